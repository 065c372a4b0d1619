"""The sales domain: users and groups now; clients, deals, leads and funnel analytics later."""
