import os
import sys

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def root() -> dict:
    return {"service": "fastapi-app", "uid": os.getuid(), "cwd": os.getcwd(),
            "python": sys.executable}
