// Package agentpbconnect is generated from proto/agent by `make proto`
// (protoc-gen-connect-go); only this file is written by hand.
package agentpbconnect
