"""hello-web: the example app that uvship ships."""

from fastapi import FastAPI

app = FastAPI(title="hello-web")


@app.get("/")
def hello() -> dict[str, str]:
    return {"message": "hello from uvship"}
