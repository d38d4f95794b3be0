#!/usr/bin/env python3
# Writes the binary (.pb) bad inputs of this folder and binary_expectations.txt. The wire format
# is spelled out by hand (no protobuf module needed) so that broken encodings can be written too.
import os
import random
D=os.path.dirname(os.path.abspath(__file__))+'/'
def varint(n):
    if n < 0: n += 1 << 64
    out=b''
    while True:
        b=n&0x7f; n>>=7
        if n: out+=bytes([b|0x80])
        else: return out+bytes([b])
def key(field, wt): return varint((field<<3)|wt)
def ld(field, payload): return key(field,2)+varint(len(payload))+payload
def s(field, text): return ld(field, text.encode() if isinstance(text,str) else text)
def vi(field, n): return key(field,0)+varint(n)
def shape(*dims): return ld(1, b''.join(varint(d) for d in dims))  # packed dims
# A valid graph: input x [-1,4], relu, output.
def graph(inp_extra=b'', dims=(-1,4)):
    return (s(1,'g') + ld(2, s(1,'x') + ld(3, shape(*dims)) + inp_extra)
            + ld(4, s(1,'a') + s(2,'relu') + s(3,'x')) + ld(5, s(1,'a')))
good = graph()
exp = {}
def w(name, data, e):
    open(D+name,'wb').write(data); exp[name]=e
NOTPB = ': error: not a valid binary Kiln graph (protobuf parsing failed'
w('truncated.pb', good[:len(good)-9], 'truncated.pb'+NOTPB)
rnd = random.Random(7)
w('garbage.pb', bytes([0xff,0xff]) + bytes(rnd.randrange(256) for _ in range(64)), 'garbage.pb'+NOTPB)
w('empty.pb', b'', 'empty.pb: error: the graph has no outputs')
w('bad_utf8.pb', s(1, b'\xff\xfe\x80') + good[3:], 'bad_utf8.pb'+NOTPB)
w('deep_nesting.pb', key(15,3)*5000 + key(15,4)*5000 + good, 'deep_nesting.pb'+NOTPB)
w('wrong_wire_type.pb', key(1,5) + b'\x00\x00', 'wrong_wire_type.pb'+NOTPB)
w('length_overflow.pb', key(4,2) + varint((1<<63)) + b'\x0a\x01a', 'length_overflow.pb'+NOTPB)
w('text_in_binary.pb', b'name: "t"\ninput { name: "x" shape { dim: -1 } }\noutput { name: "x" }\n',
  'text_in_binary.pb'+NOTPB)
w('huge_dim.pb', graph(dims=(-1, 1<<62)),
  "huge_dim.pb: error: node 'x' (input): input shape [-1,4611686018427387904] has more than 2^31 (2147483648) elements")
w('invalid_dtype.pb', graph(inp_extra=vi(2, 9)), "invalid_dtype.pb: error: node 'x' (input): invalid dtype (9)")
w('negative_dtype.pb', graph(inp_extra=vi(2, -3)), "negative_dtype.pb: error: node 'x' (input): invalid dtype (-3)")
with open(D+'binary_expectations.txt','w') as f:
    f.write('# Expected error substrings for the binary files here, one per line: `file.pb: substring`.\n')
    f.write('# Regenerate the files with tests/bad/make_binary_inputs.py.\n')
    for k,v in exp.items(): f.write('%s: %s\n'%(k,v))
