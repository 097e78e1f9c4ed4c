"""An Istio CA client (grpcio, no generated code): what an Istio agent sends to istiod.

`ca_client.py ADDR ROOT_PEM CSR_PEM TOKEN [TTL_SECONDS]` calls
istio.v1.auth.IstioCertificateService/CreateCertificate on ADDR over TLS (trusting
ROOT_PEM, server name "localhost") with `authorization: Bearer TOKEN` and prints one JSON
line: {"ok": true, "chain": [PEM, ...]} or {"ok": false, "code": NAME, "message": ...}.
The request and response are encoded by hand (three fields), so no protoc is needed.
"""
import json
import sys

import grpc

METHOD = "/istio.v1.auth.IstioCertificateService/CreateCertificate"


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def request(csr, ttl):
    body = csr.encode()
    msg = b"\x0a" + varint(len(body)) + body  # 1: csr
    if ttl:
        msg += b"\x18" + varint(ttl)  # 3: validity_duration
    return msg


def read_varint(buf, i):
    shift = n = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def response(buf):
    chain, i = [], 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        if key & 7 != 2:
            raise ValueError(f"unexpected wire type in field {key >> 3}")
        n, i = read_varint(buf, i)
        if key >> 3 == 1:  # 1: cert_chain
            chain.append(buf[i : i + n].decode())
        i += n
    return chain


def main():
    addr, root, csr, token = sys.argv[1:5]
    ttl = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    creds = grpc.ssl_channel_credentials(root_certificates=open(root, "rb").read())
    options = [("grpc.ssl_target_name_override", "localhost")]
    with grpc.secure_channel(addr, creds, options=options) as channel:
        call = channel.unary_unary(METHOD)
        try:
            raw = call(
                request(open(csr).read(), ttl),
                metadata=[("authorization", f"Bearer {token}")],
                timeout=10,
            )
            print(json.dumps({"ok": True, "chain": response(raw)}))
        except grpc.RpcError as e:
            print(json.dumps({"ok": False, "code": e.code().name, "message": e.details()}))


if __name__ == "__main__":
    main()
