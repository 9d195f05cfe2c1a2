// Package filesystempbconnect is generated from proto/ by `make proto`
// (protoc-gen-connect-go); only this file is written by hand.
package filesystempbconnect
