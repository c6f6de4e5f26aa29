"""The baseline: a bare Flask app with the webhook's route, answering 204 and doing nothing else."""

from flask import Flask

app = Flask(__name__)


@app.post("/twilio/recording-status")
def recording_status() -> tuple[str, int]:
    return "", 204
