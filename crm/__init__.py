"""The sales domain: users and groups, clients, contacts, deals, leads and their assignment, deal stages."""
