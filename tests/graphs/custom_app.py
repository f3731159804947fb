"""A project's own FastAPI app for `http.app` (tests/graphs/aegra_auth.json): a route, a middleware, a lifespan,
and a route that collides with the protocol's `/info` (the protocol's must win)."""

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

events: list[str] = []


@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.greeting = "hello from the custom app"
    events.append("startup")
    yield
    events.append("shutdown")


app = FastAPI(lifespan=lifespan)


@app.middleware("http")
async def tag_responses(request: Request, call_next):
    response = await call_next(request)
    response.headers["x-custom-middleware"] = "yes"
    return response


@app.get("/custom/hello")
async def hello(request: Request) -> dict:
    user = request.scope.get("user")
    return {
        "greeting": request.app.state.greeting,
        "user": user.identity if user is not None else None,
    }


@app.post("/custom/echo")
async def echo(request: Request) -> dict:
    # Custom routes get their bodies as sent: no content-type rewriting, no protocol limits.
    return {"content_type": request.headers.get("content-type"), "size": len(await request.body())}


@app.get("/info")
async def shadowed() -> dict:
    return {"shadowed": False}
