"""Each kind of search alone, one client, through the API: see scripts/search-kinds.
Usage: search-kinds.py GRAPHQL_URL TOKEN [COMMON,WORDS]"""
import json, statistics, sys, time, urllib.request
url, token = sys.argv[1], sys.argv[2]
COMMON = sys.argv[3].split(",") if len(sys.argv) > 3 else ["дома", "улице", "прошу", "дворе"]
RARE = ["шлагбаум", "борщевик", "фонтан", "мусоропровод"]
kinds = {
    "rare word": [(w, False) for w in RARE] + [(w, True) for w in RARE],
    "common word": [(w, False) for w in COMMON] + [(w, True) for w in COMMON],
    "common + rare": [(f"{c} {r}", f) for c, r in zip(COMMON, RARE) for f in (False, True)],
    "two common": [(f"{COMMON[i]} {COMMON[i-1]}", f) for i in range(len(COMMON)) for f in (False, True)],
    "prefix": [(p + "*", f) for p in ["освещ", "подъезд", "дорог", "комисси"] for f in (False, True)],
}
def run(kind_field, words, in_focus, with_total):
    f = {kind_field: words if kind_field == "search" else words.replace("*", "")}
    if in_focus: f["municipalityCode"] = "tomsk"
    total = "totalCount " if with_total else ""
    q = "query($f: AppealFilter) { appeals(first: 20, filter: $f) { %s edges { node { id number } } } }" % total
    body = json.dumps({"query": q, "variables": {"f": f}}).encode()
    req = urllib.request.Request(url, body, {"content-type": "application/json", "authorization": "Bearer " + token})
    t = time.time()
    out = json.loads(urllib.request.urlopen(req, timeout=60).read())
    ms = (time.time() - t) * 1000
    if "errors" in out: return ms, "ERR " + out["errors"][0]["message"][:60]
    return ms, out["data"]["appeals"].get("totalCount")
for field in ["search", "text"]:
    for with_total in (False, True):
        print(f"== {field}, totalCount {'asked' if with_total else 'not asked'}")
        for kind, cases in kinds.items():
            times = []
            totals = []
            for words, in_focus in cases:
                ms, total = run(field, words, in_focus, with_total)
                times.append(ms); totals.append(total)
            print(f"  {kind:14s} median {statistics.median(times):8.1f} ms  max {max(times):8.1f} ms  totals {totals[:4]}")
