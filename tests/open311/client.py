#!/usr/bin/env python3
"""Open311 GeoReport v2 checks of a running gridwatch, with the `georeport` client library.

Usage: python tests/open311/client.py <base_url>
    e.g. python tests/open311/client.py http://127.0.0.1:8080

georeport reads (services, service definitions, requests; JSON and XML); it has no call for
filing, so POST requests and tokens go through `requests` as any form-posting client would.
Prints one line per check and ends with "N passed, N failed"; exits non-zero on a failure.
"""
import sys

import requests
import xmltodict
from georeport import GeoReport

base = sys.argv[1].rstrip('/') + '/open311/v2'
passed = 0


def check(name, condition, detail=''):
    global passed
    if not condition:
        print(f'FAIL {name}: {detail}')
        print(f'{passed} passed, 1 failed')
        sys.exit(1)
    passed += 1
    print(f'ok   {name}' + (f' — {detail}' if detail else ''))


json_client = GeoReport(base, jurisdiction='150300')
xml_client = GeoReport(base, jurisdiction='150300', output_format='xml')

services = json_client.get_service_list()
codes = {s['service_code'] for s in services}
check('services list the report categories', {'fire_lane_blocked', 'oil_smoke', 'flying_lead_charging'} <= codes,
      f'{len(services)} services')
xml_services = xml_client.get_service_list()
check('services as XML', {s['service_code'] for s in xml_services} == codes)
fire = next(s for s in services if s['service_code'] == 'fire_lane_blocked')
check('a service with attributes says metadata true', fire['metadata'] is True and fire['type'] == 'realtime', str(fire))

definition = json_client.get_service_definition('fire_lane_blocked')
attr = definition['attributes'][0]
check('the service definition lists its attributes', attr['code'] == 'obstruction' and attr['required'] is True
      and {v['key'] for v in attr['values']} == {'vehicle', 'ebike', 'goods'}, str(attr))
xml_definition = xml_client.get_service_definition('fire_lane_blocked')
check('the service definition as XML', xml_definition['attributes']['attribute']['code'] == 'obstruction')

form = {
    'api_key': 'demo', 'jurisdiction_id': '150300', 'service_code': 'fire_lane_blocked',
    'lat': '39.6720', 'long': '106.8405', 'description': 'Open311 测试：消防通道被占',
    'attribute[obstruction]': 'ebike', 'first_name': '张', 'last_name': '三', 'phone': '13800000000',
    'email': 'zhang@example.org',
}
r = requests.post(f'{base}/requests.json', data=form)
check('POST requests files a request', r.status_code == 201, f'{r.status_code} {r.text[:200]}')
created = r.json()[0]
rid, token = created['service_request_id'], created['token']
check('the answer has an id, a token and a notice', rid.isdigit() and len(token) >= 16 and created['service_notice'],
      str(created))

one = json_client.get_service_request(rid)
check('GET requests/{id}: open, routed to its department', one['status'] == 'open'
      and one['agency_responsible'] == '消防救援大队' and one['service_code'] == 'fire_lane_blocked', str(one))
check('the public view rounds the location and hides the reporter',
      one['lat'] == 39.672 and one['long'] == 106.841 and '13800000000' not in r.text + str(one)
      and 'zhang@example.org' not in str(one), f"{one['lat']}, {one['long']}")
check('the address is the grid chain', '新华街道' in one['address'] and one['address_id'], one['address'])
xml_one = xml_client.get_service_request(rid)
check('GET requests/{id} as XML', xml_one['service_request_id'] == rid and xml_one['status'] == 'open')

listed = json_client.get_service_requests(service_code='fire_lane_blocked', status='open')
check('GET requests filters by service and status', any(x['service_request_id'] == rid for x in listed)
      and all(x['status'] == 'open' and x['service_code'] == 'fire_lane_blocked' for x in listed), f'{len(listed)} requests')
closed = json_client.get_service_requests(status='closed', start_date='2026-10-01T00:00:00Z', end_date='2026-10-31T00:00:00Z')
check('closed requests of a month of the demo', len(closed) > 100 and all(x['status'] == 'closed' for x in closed),
      f'{len(closed)} requests')
page = requests.get(f'{base}/requests.json', params={'status': 'closed', 'start_date': '2026-10-01T00:00:00Z',
                                                      'end_date': '2026-10-31T00:00:00Z', 'page_size': 10, 'page': 2}).json()
check('extension: pages of requests', len(page) == 10 and page[0]['service_request_id'] == closed[10]['service_request_id'])

t = requests.get(f'{base}/tokens/{token}.json').json()
check('GET tokens/{token} gives the request id', t == [{'service_request_id': rid, 'token': token}], str(t))
t = xmltodict.parse(requests.get(f'{base}/tokens/{token}.xml').content)
check('tokens as XML', t['service_requests']['request']['service_request_id'] == rid)

d = requests.get(f'{base}/discovery.json').json()
check('discovery names the specification and both formats',
      d['endpoints'][0]['specification'] == 'http://wiki.open311.org/GeoReport_v2'
      and set(d['endpoints'][0]['formats']) == {'application/json', 'text/xml'})

# Errors: the specification's format and status codes.
bad = dict(form, api_key='wrong')
r = requests.post(f'{base}/requests.json', data=bad)
check('a wrong api_key is 403', r.status_code == 403 and r.json()[0]['code'] == 403, r.text)
r = requests.post(f'{base}/requests.json', data={k: v for k, v in form.items() if k != 'attribute[obstruction]'})
check('a missing required attribute is 400 naming it', r.status_code == 400
      and 'attribute[obstruction]' in r.json()[0]['description'], r.text)
r = requests.post(f'{base}/requests.xml', data=dict(form, service_code='ufo'))
err = xmltodict.parse(r.content)['errors']['error']
check('an unknown service is 404, as XML errors', r.status_code == 404 and err['code'] == '404', r.text)
r = requests.get(f'{base}/requests/99999999.json')
check('an unknown request is 404', r.status_code == 404 and 'not found' in r.json()[0]['description'])
r = requests.get(f'{base}/requests.json', params={'start_date': '2026-01-01T00:00:00Z', 'end_date': '2026-06-01T00:00:00Z'})
check('a span over 90 days is 400', r.status_code == 400, r.text)
r = requests.get(f'{base}/services.json', params={'jurisdiction_id': 'boston'})
check('an unknown jurisdiction is 404', r.status_code == 404, r.text)

print(f'{passed} passed, 0 failed')
