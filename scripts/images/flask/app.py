"""skiff example: echoes the POST body; GET / answers "ok".

Served by gunicorn --workers 1 --threads 8 (see scripts/images/flask/ and
docs/images-examples.md).
"""

from flask import Flask, Response, request

app = Flask(__name__)


@app.get("/")
def index():
    return Response("ok", mimetype="text/plain")


@app.post("/")
def echo():
    body = request.get_data(cache=False)
    return Response(body, mimetype=request.mimetype or "application/octet-stream")
