"""Building a chute's image: the Dockerfile, the build context and the engine calls, shared by the CLI
(`chutes build`) and the host (the docker and kubernetes executors); imports neither of them."""
