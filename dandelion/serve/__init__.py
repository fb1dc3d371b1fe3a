"""The Ray Serve shell: deployments, the WebSocket gateway and the app builder."""
