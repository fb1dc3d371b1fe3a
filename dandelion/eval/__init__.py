"""`dandelion eval`: a conversation bench that scores listening, turn-taking, answers and latency.

Scenarios (YAML, `scenario.py`) are built into audio (`build.py`), spoken to a real server in real
time by a simulated person with a microphone and a loudspeaker (`runner.py`), and scored from what
came back (`metrics.py`). docs/evaluation.md defines every metric and the scenario format.
"""
