// Package agentpb is generated from proto/agent by `make proto`
// (protoc-gen-go); only this file is written by hand. The host agent serves
// it; the control plane calls it.
package agentpb
