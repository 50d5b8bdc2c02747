"""data-app: a small data-science web app (uvship's large benchmark project)."""

from fastapi import FastAPI

from data_app.model import predict, summary

app = FastAPI(title="data-app")


@app.get("/")
def root() -> dict:
    return summary()


@app.get("/predict")
def predict_endpoint(x: float) -> dict[str, float]:
    return {"x": x, "y": predict(x)}
