"""One router per resource: ask, search, documents, chat, ops and the chat page."""
