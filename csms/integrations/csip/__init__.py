"""The CSMS as a CSIP-AUS (IEEE 2030.5) aggregator client (issue 18).

- `identity`: LFDI/SFDI of certificates and of the sites the aggregator registers (pure);
- `transport`: the 2030.5 HTTP client (mutual TLS; the certificate header on loopback only);
- `convert`: 2030.5 documents <-> the project's values, every peer number bounded (pure);
- `client`: discovery, registration, reporting and polling of one site;
- `poller`: the loop over the csip-enabled sites, one node per site (a database lease);
- `routes`: `GET /sites/{id}/csip`, the client's view of a site.
"""
