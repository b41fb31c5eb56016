// Package pluginpb holds the marin plugin protocol (marin.proto) and the Go
// code protoc generates from it. Plugin authors do not use it directly: the
// SDK in plugins/sdk wraps it, and host/pluginhost is its client.
package pluginpb

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative marin.proto
