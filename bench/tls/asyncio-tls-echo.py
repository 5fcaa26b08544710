"""asyncio (and uvloop) echo server of the TLS benchmark, with protocols and
Python's ssl module (OpenSSL): python3 asyncio-tls-echo.py asyncio|uvloop PORT KEY_FILE CERT_FILE"""
import asyncio
import socket
import ssl
import sys


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def main(port, key_file, cert_file):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", port, backlog=1024, ssl=context)
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    kind, port, key_file, cert_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    if kind == "uvloop":
        import uvloop

        uvloop.install()
    asyncio.run(main(port, key_file, cert_file))
