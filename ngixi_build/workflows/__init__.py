"""What the build's commands run: the pipeline doit wires, watch mode, release, publish, clean."""
