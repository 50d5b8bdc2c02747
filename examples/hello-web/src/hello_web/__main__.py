"""Entry point: serve the app, or print a self-check with --check."""

import argparse
import os
import sys


def main() -> None:
    parser = argparse.ArgumentParser(prog="hello-web")
    parser.add_argument("--check", action="store_true", help="print versions and exit")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args()
    if args.check:
        import pydantic_core

        import hello_web

        print(f"hello-web ok python={sys.version_info[0]}.{sys.version_info[1]} "
              f"pydantic_core={pydantic_core.__version__} prefix={sys.prefix} "
              f"module={hello_web.__file__} uid={os.getuid()}")
        return
    import uvicorn

    uvicorn.run("hello_web:app", host="0.0.0.0", port=args.port, log_level="info")


if __name__ == "__main__":
    main()
