import lib, a_hw, b_node, c_job, d_healthy, e_inc, f_extend
from collections import Counter
ids=[s['id'] for s in lib.REG]; assert len(ids)==len(set(ids))
lib.write_all()
print(len(lib.REG)); c=Counter(s['fc'] for s in lib.REG); print(sorted(c.items()))
for t in ['time','upstream','long','human','truncated']: print(t, sum(t in s['tags'] for s in lib.REG))
print(Counter(s['scope'] for s in lib.REG))
