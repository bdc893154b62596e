"""Small HTML pages for people (sign-in errors, the self-check result): every value escaped, no script."""
from __future__ import annotations

from html import escape

_STYLE = ("body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#1b1f24}"
          "h1{font-size:1.5rem}.hint{color:#57606a;font-size:.9rem}.ok{color:#1a7f37}.bad{color:#cf222e}")

# Pages carry their own tiny stylesheet; the policy forbids every script and every remote resource.
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"


def message_page(title: str, message: str, *, ok: bool = False, correlation_id: str | None = None,
                 details: list[str] | None = None, link: tuple[str, str] | None = None) -> str:
    """A page for a person; `link` = (href, text) adds one link (the href must be an address we verified)."""
    items = "".join(f"<li>{escape(item)}</li>" for item in (details or []))
    if link is not None:
        items += f'<li><a href="{escape(link[0], quote=True)}">{escape(link[1])}</a></li>'
    ref = (f'<p class="hint">Reference: <code>{escape(correlation_id)}</code> — give it to your administrator '
           f"or support if you need help.</p>") if correlation_id else ""
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1 class=\"{'ok' if ok else 'bad'}\">{escape(title)}</h1><p>{escape(message)}</p>"
        f"{'<ul>' + items + '</ul>' if items else ''}{ref}</body></html>"
    )


def confirmation_page(title: str, message: str, *, action: str, fields: dict[str, str], button: str,
                      correlation_id: str | None = None) -> str:
    """A page that asks before acting: one form posting `fields` (hidden) to `action` (our own address)."""
    hidden = "".join(f'<input type="hidden" name="{escape(name, quote=True)}" value="{escape(value, quote=True)}">'
                     for name, value in fields.items())
    ref = (f'<p class="hint">Reference: <code>{escape(correlation_id)}</code></p>') if correlation_id else ""
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1><p>{escape(message)}</p>"
        f'<form method="post" action="{escape(action, quote=True)}">{hidden}'
        f'<button type="submit">{escape(button)}</button></form>{ref}</body></html>'
    )
