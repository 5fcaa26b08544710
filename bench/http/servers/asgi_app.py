"""The HTTP benchmark's ASGI application, for uvicorn with uvloop and
httptools: GET / is 'Hello, World!', GET /64k is 64 KiB (the bytes
bodies.mjs makes).

    python3 -m uvicorn asgi_app:app --app-dir bench/http/servers --loop uvloop --http httptools ...
"""

HELLO = b"Hello, World!"
BIG = bytes(97 + i % 26 for i in range(64 * 1024))


def _start(body):
    return {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
    }


HELLO_START = _start(HELLO)
BIG_START = _start(BIG)


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    big = scope["path"] == "/64k"
    await send(BIG_START if big else HELLO_START)
    await send({"type": "http.response.body", "body": BIG if big else HELLO})
