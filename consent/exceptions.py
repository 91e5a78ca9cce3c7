class ConsentError(ValueError):
    """A refused consent operation, naming the field at fault (``choices.marketing``) and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
