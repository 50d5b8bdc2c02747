import idna


def greet() -> str:
    return "core:" + idna.encode("bücher.example").decode()
