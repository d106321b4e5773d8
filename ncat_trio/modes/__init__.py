"""One module per mode: opens sockets, then runs stream-taking session functions."""
