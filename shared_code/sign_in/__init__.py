"""The sign-in side: an employee's way from the login link through the IdP to a session (`service`), the
signed cookies and pending logins it keeps in the browser, mobile sign-in, and the end of sessions
when the trust behind them ends (`trust`, a consumer of the event log).
"""
