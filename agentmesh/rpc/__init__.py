"""gRPC plumbing shared by the services: server factory, channels, interceptors, error mapping."""
