"""Entry point: serve the app, or print a self-check with --check."""

import argparse
import os
import sys


def main() -> None:
    parser = argparse.ArgumentParser(prog="data-app")
    parser.add_argument("--check", action="store_true", help="fit the model, print versions")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args()
    if args.check:
        import numpy
        import pandas
        import pyarrow
        import scipy
        import sklearn

        import data_app
        from data_app.model import summary

        s = summary()
        print(f"data-app ok python={sys.version_info[0]}.{sys.version_info[1]} "
              f"numpy={numpy.__version__} pandas={pandas.__version__} scipy={scipy.__version__} "
              f"sklearn={sklearn.__version__} pyarrow={pyarrow.__version__} slope={s['slope']} "
              f"prefix={sys.prefix} module={data_app.__file__} uid={os.getuid()}")
        return
    import uvicorn

    uvicorn.run("data_app:app", host="0.0.0.0", port=args.port, log_level="info")


if __name__ == "__main__":
    main()
