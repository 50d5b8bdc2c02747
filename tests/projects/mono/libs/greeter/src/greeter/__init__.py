def greet(name: str) -> str:
    return f"hello from {name} via greeter"
