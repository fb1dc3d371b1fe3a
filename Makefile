.PHONY: setup serve test bench
setup:
	./scripts/setup
serve:
	./scripts/serve
test:
	./scripts/test
bench:
	./scripts/setup && .venv/bin/python benchmarks/voice_to_voice.py
