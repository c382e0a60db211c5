"""Rapport's FHIR API as fhirpy (https://pypi.org/project/fhirpy/) sees it.

Usage: fhirpy_check.py BASE_URL TOKEN FIXTURE_BUNDLE

BASE_URL is the FHIR base (http://127.0.0.1:PORT/fhir), TOKEN a bearer token with `user/*.*`
for a staff member who may create patients and who is on the care team of the FIXTURE_BUNDLE's
patient (a Synthea transaction Bundle). Each step asserts what FHIR R4 (http.html, search.html)
says the server must answer. Exits 0 when every check passed, 1 with the failed check otherwise.
Run by crates/rapport/tests/it/clients.rs against a freshly spawned server.
"""

import asyncio
import json
import sys
import traceback
import uuid

import aiohttp
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import BaseFHIRError, MultipleResourcesFound

SYSTEM = "urn:rapport:test:fhirpy"
PAGE = 20
MAX_PAGES = 200  # a server whose next links never end fails instead of hanging


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def ok(message):
    print(f"ok - {message}", flush=True)


FAILURES = []


def expect(condition, message):
    """A check whose failure does not stop the later steps (they do not depend on it)."""
    if not condition:
        FAILURES.append(message)
        print(f"not ok - {message}", flush=True)


class Checks:
    def __init__(self, base, token, fixture):
        self.base = base.rstrip("/")
        self.token = token
        self.fixture = fixture
        self.client = self.client_with()

    def client_with(self, **headers):
        """A fhirpy client; `headers` are sent with every request (If-None-Exist, If-Match)."""
        return AsyncFHIRClient(
            self.base, authorization=f"Bearer {self.token}", extra_headers=headers or None
        )

    async def post_bundle(self, body: bytes):
        """POST a Bundle to the base as it is (fhirpy has no transaction helper, and its
        execute() would parse and re-serialise the JSON, changing decimals)."""
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/fhir+json",
            "Accept": "application/fhir+json",
        }
        async with aiohttp.ClientSession() as session:
            async with session.post(self.base, data=body, headers=headers) as r:
                return r.status, r.headers.get("Content-Type", ""), await r.text()

    async def page_ids(self, resource_type, **params):
        """Walk a search through its `next` links (as a client would): ids and page sizes."""
        bundle = await self.client.resources(resource_type).search(**params).limit(PAGE).fetch_raw()
        total = bundle.get("total")
        ids, sizes = [], []
        for _ in range(MAX_PAGES):
            check(bundle.get("type") == "searchset", f"a searchset, got {bundle.get('type')}")
            found = [e["resource"]["id"] for e in bundle.get("entry", [])
                     if e.get("search", {}).get("mode", "match") == "match"]
            check(len(found) <= PAGE, f"_count={PAGE} but a page held {len(found)} resources")
            ids += found
            sizes.append(len(found))
            nxt = [link["url"] for link in bundle.get("link", []) if link["relation"] == "next"]
            if not nxt:
                return total, ids, sizes
            check(nxt[0].startswith(("http://", "https://")),
                  f"next link is not absolute (Bundle.link.url, http.html#paging): {nxt[0]}")
            bundle = await self.client.execute(nxt[0], method="get")
        raise CheckFailed(f"more than {MAX_PAGES} pages of {resource_type}: next links never end")

    async def run(self):
        c = self.client
        meta = await c.execute("metadata", method="get")
        check(meta["resourceType"] == "CapabilityStatement" and meta["fhirVersion"] == "4.0.1",
              f"metadata is an R4 CapabilityStatement: {meta.get('resourceType')} {meta.get('fhirVersion')}")
        ok("metadata: CapabilityStatement, FHIR 4.0.1")

        # Create.
        value = str(uuid.uuid4())
        identifier = f"{SYSTEM}|{value}"
        patient = c.resource(
            "Patient",
            identifier=[{"system": SYSTEM, "value": value}],
            name=[{"family": "Fhirpy", "given": ["Client"]}],
            gender="female",
            birthDate="1980-02-03",
        )
        await patient.save()
        pid = patient.id
        check(pid, "the created Patient has an id")
        check(patient["meta"]["versionId"] == "1", f"a new Patient is version 1: {patient['meta']}")
        ok(f"create: Patient/{pid} version 1")

        # Conditional create (http.html#ccreate): one match, nothing is created, 200.
        conditional = self.client_with(**{"If-None-Exist": f"identifier={identifier}"})
        again, created = await conditional.resources("Patient").search(
            identifier=identifier
        ).get_or_create(conditional.resource(
            "Patient",
            identifier=[{"system": SYSTEM, "value": value}],
            name=[{"family": "Duplicate"}],
        ))
        check(not created, "a conditional create whose criteria match answers 200, not 201")
        check(again.id == pid, f"the conditional create returns the existing Patient/{pid}, got {again.id}")
        check(again["name"][0]["family"] == "Fhirpy", "the existing Patient is not changed")
        ok(f"conditional create (If-None-Exist) returns the existing Patient/{pid}")

        # Search by identifier: exactly one, and the total agrees.
        found = await c.resources("Patient").search(identifier=identifier).fetch_all()
        check([p.id for p in found] == [pid],
              f"search by identifier finds exactly Patient/{pid}: {[p.id for p in found]}")
        check(await c.resources("Patient").search(identifier=identifier).count() == 1,
              "the search's total is 1")
        summary = await c.execute("Patient", method="get", params={"identifier": identifier, "_count": 0})
        check(summary.get("total") == 1 and not summary.get("entry"),
              f"_count=0 gives the total and no entries: {summary}")
        expect(not [link for link in summary.get("link", []) if link["relation"] in ("next", "previous", "prev", "last")],
              "_count=0 is treated as _summary=count: no prev/next/last links (search.html#count), "
              f"got {summary.get('link')}")
        ok("search by identifier: exactly 1 (and _count=0 counts it)")

        # Updates over the current version, then one with a stale ETag.
        patient["birthDate"] = "1980-02-04"
        v2 = self.client_with(**{"If-Match": 'W/"1"'}).resource("Patient", **patient.serialize())
        await v2.update()
        check(v2["meta"]["versionId"] == "2", f"an update over W/\"1\" makes version 2: {v2['meta']}")
        v3 = c.resource("Patient", **v2.serialize())
        v3["telecom"] = [{"system": "phone", "value": "+1 555 0100"}]
        await v3.update()
        check(v3["meta"]["versionId"] == "3", f"a second update makes version 3: {v3['meta']}")
        stale = self.client_with(**{"If-Match": 'W/"1"'}).resource("Patient", **v3.serialize())
        stale["gender"] = "male"
        try:
            await stale.update()
            raise CheckFailed("an update with the stale If-Match W/\"1\" was accepted")
        except MultipleResourcesFound as e:  # fhirpy's name for any 412
            outcome = json.loads(str(e))
            check(outcome.get("resourceType") == "OperationOutcome",
                  f"the 412 carries an OperationOutcome: {outcome}")
        current = await c.get("Patient", pid)
        check(current["meta"]["versionId"] == "3" and current["gender"] == "female",
              f"the refused update changed nothing: {current['meta']}")
        ok("update with a stale If-Match: 412 Precondition Failed, nothing written")

        # History (http.html#history): three versions, newest first.
        history = await c.execute(f"Patient/{pid}/_history", method="get")
        check(history["resourceType"] == "Bundle" and history["type"] == "history",
              f"a history Bundle: {history.get('type')}")
        versions = [e["resource"]["meta"]["versionId"] for e in history["entry"]]
        check(versions == ["3", "2", "1"], f"history lists versions 3, 2, 1: {versions}")
        check([e["request"]["method"] for e in history["entry"]] == ["PUT", "PUT", "POST"],
              "history entries carry their requests")
        first = await c.execute(f"Patient/{pid}/_history/1", method="get")
        check(first["birthDate"] == "1980-02-03", "vread of version 1 gives version 1")
        ok("history: versions 3, 2, 1; vread of version 1")

        for step in (self.own_transaction, self.fixture_transaction):
            try:
                await step()
            except (CheckFailed, BaseFHIRError) as e:
                FAILURES.append(str(e))
                print(f"not ok - {e}", flush=True)

    async def own_transaction(self):
        """A transaction of a new Patient and 45 Observations linked by urn:uuid references."""
        value = str(uuid.uuid4())
        patient_url = f"urn:uuid:{uuid.uuid4()}"
        entries = [{
            "fullUrl": patient_url,
            "resource": {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": value}],
                         "name": [{"family": "Transaction", "given": ["Fhirpy"]}]},
            "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={SYSTEM}|{value}"},
        }]
        n = 45
        for i in range(n):
            entries.append({
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": {
                    "resourceType": "Observation", "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
                    "subject": {"reference": patient_url},
                    "effectiveDateTime": f"2024-01-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
                    "valueQuantity": {"value": 60 + i, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
                },
                "request": {"method": "POST", "url": "Observation"},
            })
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        status, _, text = await self.post_bundle(json.dumps(bundle).encode())
        check(status == 200, f"the transaction answers 200: {status} {text[:500]}")
        response = json.loads(text)
        check(response["type"] == "transaction-response", f"a transaction-response: {response.get('type')}")
        statuses = [e["response"]["status"] for e in response["entry"]]
        check(len(statuses) == n + 1 and all(s.startswith("201") for s in statuses),
              f"every entry of the new transaction is 201 Created: {sorted(set(statuses))}")
        pid = response["entry"][0]["response"]["location"].split("/")[1]
        obs = {e["response"]["location"].split("/")[1] for e in response["entry"][1:]}
        check(len(obs) == n, "45 distinct Observations were created")
        subject = response["entry"][1]["resource"]["subject"]["reference"]
        check(subject == f"Patient/{pid}", f"urn:uuid references are rewritten: {subject}")
        ok(f"transaction of Patient/{pid} and {n} Observations: all 201")

        total, ids, sizes = await self.page_ids("Observation", patient=f"Patient/{pid}")
        check(total == n, f"total is {n}: {total}")
        check(len(ids) == len(set(ids)) and set(ids) == obs,
              f"paging gives each of the {n} Observations once: {len(ids)} ids, {len(set(ids))} distinct")
        check(sizes == [20, 20, 5], f"pages of _count={PAGE}: {sizes}")
        every = await self.client.resources("Observation").search(patient=f"Patient/{pid}").limit(PAGE).fetch_all()
        check(sorted(o.id for o in every) == sorted(obs), "fhirpy's fetch_all gives the same Observations")
        ok(f"paging Observations with _count={PAGE}: pages {sizes}, no duplicates (next links and fetch_all)")

    async def fixture_transaction(self):
        """A Synthea fixture transaction as it is, twice: the second time is a replay."""
        with open(self.fixture, "rb") as f:
            raw = f.read()
        bundle = json.loads(raw.decode("utf-8-sig"))
        kind = bundle["type"]
        types = [e["resource"]["resourceType"] for e in bundle["entry"]]
        n_obs = types.count("Observation")
        responses = []
        for attempt in ("first", "second"):
            status, content_type, text = await self.post_bundle(raw)
            check(status == 200,
                  f"POST of the fixture {kind} ({len(raw)} bytes, {len(types)} entries) answers 200: "
                  f"{status} {content_type} {text[:300]!r}")
            response = json.loads(text)
            check(response["type"] == f"{kind}-response", f"a {kind}-response: {response.get('type')}")
            statuses = [e["response"]["status"] for e in response["entry"]]
            check(len(statuses) == len(types) and all(s[:1] == "2" for s in statuses),
                  f"every entry of the fixture is 2xx ({attempt} post): {sorted(set(statuses))}")
            responses.append(response)
        etags = [[e["response"].get("etag") for e in r["entry"]] for r in responses]
        check(etags[0] == etags[1], "posting the same bundle again writes no new version")
        locations = [e["response"]["location"] for e in responses[1]["entry"]]
        pid = locations[types.index("Patient")].split("/")[1]
        obs = {loc.split("/")[1] for loc, t in zip(locations, types) if t == "Observation"}
        ok(f"fixture {kind} ({len(types)} entries): statuses {sorted(set(statuses))}, a replay writes nothing")

        total, ids, sizes = await self.page_ids("Observation", patient=f"Patient/{pid}")
        check(total == n_obs, f"Patient/{pid} has the fixture's {n_obs} Observations: total {total}")
        check(len(ids) == n_obs and set(ids) == obs,
              f"paging gives each of the {n_obs} Observations once: {len(ids)} ids, {len(set(ids))} distinct")
        ok(f"paging the fixture patient's {n_obs} Observations: pages {sizes}")


async def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        await Checks(argv[1], argv[2], argv[3]).run()
    except CheckFailed as e:
        FAILURES.append(str(e))
    except BaseFHIRError as e:
        traceback.print_exc()
        FAILURES.append(f"the server refused a request fhirpy made: {e}")
    if FAILURES:
        for f in FAILURES:
            print(f"FAILED: {f}", file=sys.stderr)
        return 1
    print("fhirpy: every check passed")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv)))
