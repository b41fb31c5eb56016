# Regenerates python.json, the CPython draws pyrand must reproduce:
#   python3 backends/eval/pyrand/testdata/python.py > backends/eval/pyrand/testdata/python.json
import json
import random
import sys

out = {"python": sys.version.split()[0], "cases": []}
for seed in [0, 1, 42, 1234, 2**32 + 5]:
    r = random.Random(seed)
    case = {"seed": seed}
    case["uint32"] = [r.getrandbits(32) for _ in range(5)]
    case["random"] = [r.random() for _ in range(5)]
    case["bits40"] = [r.getrandbits(40) for _ in range(3)]
    case["randbelow"] = [r._randbelow(n) for n in (1, 2, 3, 7, 100, 1000, 2**20 + 3)]
    # the two sample strategies: a small population (pool) and a large one (set)
    case["sample_small"] = r.sample(range(10), 4)
    case["sample_large"] = r.sample(range(1000), 6)
    case["sample_all"] = r.sample(range(5), 5)
    xs = list(range(12))
    r.shuffle(xs)
    case["shuffle"] = xs
    case["choices"] = r.choices(range(17), k=8)
    out["cases"].append(case)
print(json.dumps(out, indent=1))
