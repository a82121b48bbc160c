#!/usr/bin/python3
"""The Python peer: aiosmtpd (STARTTLS) running dkimpy, pyspf and authheaders (SPF, DKIM, DMARC)
on every message against the benchmark's DNS server, storing each result as a line of a file.
Usage: python-peer.py PORT DNS_PORT KEY CERT OUT"""
import asyncio
import json
import ssl
import sys
import threading

import dns.resolver
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

import authheaders

port, dns_port, key, cert, out_file = sys.argv[1:6]
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = ["127.0.0.1"]
resolver.port = int(dns_port)
dns.resolver.default_resolver = resolver  # pyspf asks through dnspython


def dnsfunc(name, timeout=5):
    """TXT lookups for dkimpy (which wants bytes) and authheaders' DMARC code (which wants str)."""
    name = name.decode() if isinstance(name, bytes) else name
    try:
        answer = resolver.resolve(name, "TXT", lifetime=timeout)
    except Exception:
        return None
    text = b"".join(b"".join(r.strings) for r in answer)
    return text.decode(errors="replace") if name.startswith("_dmarc.") else text


lock = threading.Lock()
out = open(out_file, "a")


class Handler:
    async def handle_DATA(self, server, session, envelope):
        def work():
            return authheaders.authenticate_message(
                envelope.original_content, "python-peer.example", spf=True, dkim=True, dmarc=True,
                ip=session.peer[0], mail_from=envelope.mail_from, helo=session.host_name, dnsfunc=dnsfunc)
        result = await asyncio.get_running_loop().run_in_executor(None, work)
        with lock:
            out.write(json.dumps({"authentication_results": result}) + "\n")
        return "250 OK"


context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
controller = Controller(Handler(), hostname="127.0.0.1", port=int(port), tls_context=context,
                        data_size_limit=60 * 1024 * 1024)
controller.start()
print(f"listening smtp 127.0.0.1:{port}", flush=True)
threading.Event().wait()
