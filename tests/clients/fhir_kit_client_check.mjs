// Rapport's FHIR API as fhir-kit-client (https://www.npmjs.com/package/fhir-kit-client) sees it.
//
// Usage: node fhir_kit_client_check.mjs BASE_URL TOKEN FIXTURE_BUNDLE
//
// BASE_URL is the FHIR base (http://127.0.0.1:PORT/fhir), TOKEN a bearer token with `user/*.*`
// for a staff member who may create patients and who is on the care team of the FIXTURE_BUNDLE's
// patient (a Synthea transaction Bundle). Each step asserts what FHIR R4 (http.html, search.html)
// says the server must answer. Exits 0 when every check passed, 1 listing the failed checks.
// Run by crates/rapport/tests/it/clients.rs against a freshly spawned server.

import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { Client } from 'fhir-kit-client';

const SYSTEM = 'urn:rapport:test:fhir-kit-client';
const PAGE = 20;
const MAX_PAGES = 200; // a server whose next links never end fails instead of hanging

class CheckFailed extends Error {}
const failures = [];

function check(condition, message) {
  if (!condition) throw new CheckFailed(message);
}
/** A check whose failure does not stop the later steps (they do not depend on it). */
function expect(condition, message) {
  if (!condition) {
    failures.push(message);
    console.log(`not ok - ${message}`);
  }
}
const ok = (message) => console.log(`ok - ${message}`);
const status = (result) => Client.httpFor(result).response?.status;
const idOf = (location) => location.split('/')[1];
const show = (data) => String(typeof data === 'string' ? data : JSON.stringify(data)).slice(0, 500);

/** The HTTP error of a failed request, as fhir-kit-client reports it. */
async function refusal(promise) {
  try {
    await promise;
  } catch (e) {
    if (e.response) return e.response;
    throw e;
  }
  return undefined;
}

async function main([base, token, fixture]) {
  if (!fixture) {
    console.error('usage: node fhir_kit_client_check.mjs BASE_URL TOKEN FIXTURE_BUNDLE');
    return 2;
  }
  base = base.replace(/\/+$/, '');
  const client = new Client({ baseUrl: base, bearerToken: token });

  const meta = await client.capabilityStatement();
  check(meta.resourceType === 'CapabilityStatement' && meta.fhirVersion === '4.0.1',
    `metadata is an R4 CapabilityStatement: ${meta.resourceType} ${meta.fhirVersion}`);
  ok('metadata: CapabilityStatement, FHIR 4.0.1');

  // Create.
  const value = randomUUID();
  const identifier = `${SYSTEM}|${value}`;
  const body = {
    resourceType: 'Patient',
    identifier: [{ system: SYSTEM, value }],
    name: [{ family: 'KitClient', given: ['Check'] }],
    gender: 'female',
    birthDate: '1981-03-04',
  };
  const created = await client.create({ resourceType: 'Patient', body });
  const pid = created.id;
  check(status(created) === 201, `create answers 201 Created: ${status(created)}`);
  check(pid && created.meta?.versionId === '1', `a new Patient with an id, version 1: ${pid} ${JSON.stringify(created.meta)}`);
  const location = Client.httpFor(created).response.headers.get('location') ?? '';
  check(location.includes(`/Patient/${pid}/_history/1`), `Location names the new version: ${location}`);
  ok(`create: Patient/${pid} version 1`);

  // Conditional create (http.html#ccreate): one match, nothing is created, 200.
  const again = await client.create({
    resourceType: 'Patient',
    body: { ...body, name: [{ family: 'Duplicate' }] },
    options: { headers: { 'If-None-Exist': `identifier=${identifier}` } },
  });
  check(status(again) === 200, `a conditional create whose criteria match answers 200: ${status(again)}`);
  check(again.id === pid, `the conditional create returns the existing Patient/${pid}, got ${again.id}`);
  check(again.name?.[0]?.family === 'KitClient', 'the existing Patient is not changed');
  ok(`conditional create (If-None-Exist) returns the existing Patient/${pid}`);

  // Search by identifier: exactly one.
  const found = await client.search({ resourceType: 'Patient', searchParams: { identifier } });
  const ids = (found.entry ?? []).filter((e) => e.search?.mode !== 'outcome').map((e) => e.resource.id);
  check(found.type === 'searchset' && found.total === 1 && ids.length === 1 && ids[0] === pid,
    `search by identifier finds exactly Patient/${pid}: total ${found.total}, ${JSON.stringify(ids)}`);
  const counted = await client.search({ resourceType: 'Patient', searchParams: { identifier, _count: 0 } });
  check(counted.total === 1 && !(counted.entry ?? []).length, `_count=0 gives the total and no entries: ${JSON.stringify(counted)}`);
  expect(client.nextPage({ bundle: counted }) === undefined,
    '_count=0 is treated as _summary=count: no next link (search.html#count), else nextPage() never ends; got '
    + JSON.stringify(counted.link));
  ok('search by identifier: exactly 1');

  // Updates over the current version, then one with a stale ETag.
  const v2 = await client.update({
    resourceType: 'Patient', id: pid, body: { ...created, birthDate: '1981-03-05' },
    options: { headers: { 'If-Match': 'W/"1"' } },
  });
  check(status(v2) === 200 && v2.meta.versionId === '2', `an update over W/"1" makes version 2: ${status(v2)} ${JSON.stringify(v2.meta)}`);
  check(Client.httpFor(v2).response.headers.get('etag') === 'W/"2"', 'the update answers ETag W/"2"');
  const v3 = await client.update({
    resourceType: 'Patient', id: pid, body: { ...v2, telecom: [{ system: 'phone', value: '+1 555 0101' }] },
  });
  check(v3.meta.versionId === '3', `a second update makes version 3: ${JSON.stringify(v3.meta)}`);
  const stale = await refusal(client.update({
    resourceType: 'Patient', id: pid, body: { ...v3, gender: 'male' },
    options: { headers: { 'If-Match': 'W/"1"' } },
  }));
  check(stale?.status === 412, `an update with the stale If-Match W/"1" answers 412: ${stale?.status}`);
  check(stale.data?.resourceType === 'OperationOutcome', `the 412 carries an OperationOutcome: ${JSON.stringify(stale.data)}`);
  const current = await client.read({ resourceType: 'Patient', id: pid });
  check(current.meta.versionId === '3' && current.gender === 'female', `the refused update changed nothing: ${JSON.stringify(current.meta)}`);
  ok('update with a stale If-Match: 412 Precondition Failed, nothing written');

  // History (http.html#history): three versions, newest first.
  const history = await client.history({ resourceType: 'Patient', id: pid });
  check(history.resourceType === 'Bundle' && history.type === 'history', `a history Bundle: ${history.type}`);
  const versions = history.entry.map((e) => e.resource.meta.versionId);
  check(JSON.stringify(versions) === '["3","2","1"]', `history lists versions 3, 2, 1: ${versions}`);
  const first = await client.vread({ resourceType: 'Patient', id: pid, version: '1' });
  check(first.birthDate === '1981-03-04', 'vread of version 1 gives version 1');
  ok('history: versions 3, 2, 1; vread of version 1');

  for (const step of [ownTransaction, fixtureTransaction]) {
    try {
      await step(client, base, token, fixture);
    } catch (e) {
      const message = e instanceof CheckFailed ? e.message
        : `${e.message}${e.response ? ` ${show(e.response.data)}` : ''}`;
      failures.push(message);
      console.log(`not ok - ${message}`);
    }
  }
  return 0;
}

/** Follow `next` links with nextPage() from a first page: ids and page sizes. */
async function pageIds(client, resourceType, searchParams) {
  let bundle = await client.search({ resourceType, searchParams: { ...searchParams, _count: PAGE } });
  const total = bundle.total;
  const ids = [];
  const sizes = [];
  for (let i = 0; i < MAX_PAGES; i += 1) {
    check(bundle.type === 'searchset', `a searchset, got ${bundle.type}`);
    const page = (bundle.entry ?? []).filter((e) => (e.search?.mode ?? 'match') === 'match').map((e) => e.resource.id);
    check(page.length <= PAGE, `_count=${PAGE} but a page held ${page.length} resources`);
    ids.push(...page);
    sizes.push(page.length);
    const next = client.nextPage({ bundle });
    if (!next) return { total, ids, sizes };
    bundle = await next;
  }
  throw new CheckFailed(`more than ${MAX_PAGES} pages of ${resourceType}: next links never end`);
}

/** A transaction of a new Patient and 45 Observations linked by urn:uuid references. */
async function ownTransaction(client) {
  const value = randomUUID();
  const patientUrl = `urn:uuid:${randomUUID()}`;
  const n = 45;
  const entry = [{
    fullUrl: patientUrl,
    resource: { resourceType: 'Patient', identifier: [{ system: SYSTEM, value }], name: [{ family: 'Transaction', given: ['Kit'] }] },
    request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${SYSTEM}|${value}` },
  }];
  for (let i = 0; i < n; i += 1) {
    entry.push({
      fullUrl: `urn:uuid:${randomUUID()}`,
      resource: {
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ system: 'http://loinc.org', code: '9279-1', display: 'Respiratory rate' }] },
        subject: { reference: patientUrl },
        effectiveDateTime: `2024-02-${String(1 + (i % 28)).padStart(2, '0')}T${String(i % 24).padStart(2, '0')}:30:00Z`,
        valueQuantity: { value: 12 + (i % 10), unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
      },
      request: { method: 'POST', url: 'Observation' },
    });
  }
  // fhir-kit-client's transaction() posts to `${baseUrl}/`.
  const response = await client.transaction({ body: { resourceType: 'Bundle', type: 'transaction', entry } });
  check(response.type === 'transaction-response', `a transaction-response: ${response.type}`);
  const statuses = response.entry.map((e) => e.response.status);
  check(statuses.length === n + 1 && statuses.every((s) => s.startsWith('201')),
    `every entry of the new transaction is 201 Created: ${[...new Set(statuses)]}`);
  const pid = idOf(response.entry[0].response.location);
  const obs = new Set(response.entry.slice(1).map((e) => idOf(e.response.location)));
  check(obs.size === n, `${n} distinct Observations were created`);
  check(response.entry[1].resource.subject.reference === `Patient/${pid}`,
    `urn:uuid references are rewritten: ${response.entry[1].resource.subject.reference}`);
  ok(`transaction of Patient/${pid} and ${n} Observations: all 201`);

  const { total, ids, sizes } = await pageIds(client, 'Observation', { patient: `Patient/${pid}` });
  check(total === n, `total is ${n}: ${total}`);
  check(ids.length === n && new Set(ids).size === n && ids.every((id) => obs.has(id)),
    `paging gives each of the ${n} Observations once: ${ids.length} ids, ${new Set(ids).size} distinct`);
  check(JSON.stringify(sizes) === '[20,20,5]', `pages of _count=${PAGE}: ${sizes}`);
  ok(`paging Observations with _count=${PAGE} via nextPage(): pages ${sizes}, no duplicates`);
}

/** A Synthea fixture transaction as it is, twice: the second time is a replay. */
async function fixtureTransaction(client, base, _token, fixture) {
  // Sent as the file's text: parsing and serialising it again would change decimals.
  const raw = readFileSync(fixture, 'utf8').replace(/^\uFEFF/, '');
  const bundle = JSON.parse(raw);
  const kind = bundle.type;
  const types = bundle.entry.map((e) => e.resource.resourceType);
  const nObs = types.filter((t) => t === 'Observation').length;
  const responses = [];
  for (const attempt of ['first', 'second']) {
    const response = await refusal(client.request(base, {
      method: 'POST', body: raw, options: { headers: { 'content-type': 'application/fhir+json' } },
    }).then((r) => { responses.push(r); }));
    check(!response, `POST of the fixture ${kind} (${Buffer.byteLength(raw)} bytes, ${types.length} entries) answers 200: `
      + `${response?.status} ${show(response?.data)}`);
    const r = responses.at(-1);
    check(r.type === `${kind}-response`, `a ${kind}-response: ${r.type}`);
    const statuses = r.entry.map((e) => e.response.status);
    check(statuses.length === types.length && statuses.every((s) => s.startsWith('2')),
      `every entry of the fixture is 2xx (${attempt} post): ${[...new Set(statuses)]}`);
  }
  const statuses = [...new Set(responses.flatMap((r) => r.entry.map((e) => e.response.status)))];
  const etags = responses.map((r) => JSON.stringify(r.entry.map((e) => e.response.etag)));
  check(etags[0] === etags[1], 'posting the same bundle again writes no new version');
  const locations = responses[1].entry.map((e) => e.response.location);
  const pid = idOf(locations[types.indexOf('Patient')]);
  const obs = new Set(locations.filter((_, i) => types[i] === 'Observation').map(idOf));
  ok(`fixture ${kind} (${types.length} entries): statuses ${statuses}, a replay writes nothing`);

  const { total, ids, sizes } = await pageIds(client, 'Observation', { patient: `Patient/${pid}` });
  check(total === nObs, `Patient/${pid} has the fixture's ${nObs} Observations: total ${total}`);
  check(ids.length === nObs && new Set(ids).size === nObs && ids.every((id) => obs.has(id)),
    `paging gives each of the ${nObs} Observations once: ${ids.length} ids, ${new Set(ids).size} distinct`);
  ok(`paging the fixture patient's ${nObs} Observations via nextPage(): pages ${sizes}`);
}

let code;
try {
  code = await main(process.argv.slice(2));
} catch (e) {
  const message = e instanceof CheckFailed ? e.message
    : `${e.stack}${e.response ? `\n${e.response.status} ${show(e.response.data)}` : ''}`;
  failures.push(message);
  code = 1;
}
if (code === 0 && failures.length === 0) {
  console.log('fhir-kit-client: every check passed');
} else {
  for (const f of failures) console.error(`FAILED: ${f}`);
  code = code || 1;
}
process.exit(code);
