// Package filesystempb is generated from proto/ by `make proto` (protoc-gen-go); only
// this file is written by hand. envd serves it; the host agent and tests call it.
package filesystempb
