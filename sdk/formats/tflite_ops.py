"""BuiltinOperator names of the TFLite schema, indexed by code (tensorflow/compiler/mlir/lite/schema/schema.fbs).

Codes 0..209; generated from the schema shipped with ai-edge-litert 2.3.0. A newer code than this table knows
is reported as ``BUILTIN_<n>`` by the reader."""

BUILTIN_OPERATORS: tuple[str, ...] = (
    "ADD",  # 0
    "AVERAGE_POOL_2D",  # 1
    "CONCATENATION",  # 2
    "CONV_2D",  # 3
    "DEPTHWISE_CONV_2D",  # 4
    "DEPTH_TO_SPACE",  # 5
    "DEQUANTIZE",  # 6
    "EMBEDDING_LOOKUP",  # 7
    "FLOOR",  # 8
    "FULLY_CONNECTED",  # 9
    "HASHTABLE_LOOKUP",  # 10
    "L2_NORMALIZATION",  # 11
    "L2_POOL_2D",  # 12
    "LOCAL_RESPONSE_NORMALIZATION",  # 13
    "LOGISTIC",  # 14
    "LSH_PROJECTION",  # 15
    "LSTM",  # 16
    "MAX_POOL_2D",  # 17
    "MUL",  # 18
    "RELU",  # 19
    "RELU_N1_TO_1",  # 20
    "RELU6",  # 21
    "RESHAPE",  # 22
    "RESIZE_BILINEAR",  # 23
    "RNN",  # 24
    "SOFTMAX",  # 25
    "SPACE_TO_DEPTH",  # 26
    "SVDF",  # 27
    "TANH",  # 28
    "CONCAT_EMBEDDINGS",  # 29
    "SKIP_GRAM",  # 30
    "CALL",  # 31
    "CUSTOM",  # 32
    "EMBEDDING_LOOKUP_SPARSE",  # 33
    "PAD",  # 34
    "UNIDIRECTIONAL_SEQUENCE_RNN",  # 35
    "GATHER",  # 36
    "BATCH_TO_SPACE_ND",  # 37
    "SPACE_TO_BATCH_ND",  # 38
    "TRANSPOSE",  # 39
    "MEAN",  # 40
    "SUB",  # 41
    "DIV",  # 42
    "SQUEEZE",  # 43
    "UNIDIRECTIONAL_SEQUENCE_LSTM",  # 44
    "STRIDED_SLICE",  # 45
    "BIDIRECTIONAL_SEQUENCE_RNN",  # 46
    "EXP",  # 47
    "TOPK_V2",  # 48
    "SPLIT",  # 49
    "LOG_SOFTMAX",  # 50
    "DELEGATE",  # 51
    "BIDIRECTIONAL_SEQUENCE_LSTM",  # 52
    "CAST",  # 53
    "PRELU",  # 54
    "MAXIMUM",  # 55
    "ARG_MAX",  # 56
    "MINIMUM",  # 57
    "LESS",  # 58
    "NEG",  # 59
    "PADV2",  # 60
    "GREATER",  # 61
    "GREATER_EQUAL",  # 62
    "LESS_EQUAL",  # 63
    "SELECT",  # 64
    "SLICE",  # 65
    "SIN",  # 66
    "TRANSPOSE_CONV",  # 67
    "SPARSE_TO_DENSE",  # 68
    "TILE",  # 69
    "EXPAND_DIMS",  # 70
    "EQUAL",  # 71
    "NOT_EQUAL",  # 72
    "LOG",  # 73
    "SUM",  # 74
    "SQRT",  # 75
    "RSQRT",  # 76
    "SHAPE",  # 77
    "POW",  # 78
    "ARG_MIN",  # 79
    "FAKE_QUANT",  # 80
    "REDUCE_PROD",  # 81
    "REDUCE_MAX",  # 82
    "PACK",  # 83
    "LOGICAL_OR",  # 84
    "ONE_HOT",  # 85
    "LOGICAL_AND",  # 86
    "LOGICAL_NOT",  # 87
    "UNPACK",  # 88
    "REDUCE_MIN",  # 89
    "FLOOR_DIV",  # 90
    "REDUCE_ANY",  # 91
    "SQUARE",  # 92
    "ZEROS_LIKE",  # 93
    "FILL",  # 94
    "FLOOR_MOD",  # 95
    "RANGE",  # 96
    "RESIZE_NEAREST_NEIGHBOR",  # 97
    "LEAKY_RELU",  # 98
    "SQUARED_DIFFERENCE",  # 99
    "MIRROR_PAD",  # 100
    "ABS",  # 101
    "SPLIT_V",  # 102
    "UNIQUE",  # 103
    "CEIL",  # 104
    "REVERSE_V2",  # 105
    "ADD_N",  # 106
    "GATHER_ND",  # 107
    "COS",  # 108
    "WHERE",  # 109
    "RANK",  # 110
    "ELU",  # 111
    "REVERSE_SEQUENCE",  # 112
    "MATRIX_DIAG",  # 113
    "QUANTIZE",  # 114
    "MATRIX_SET_DIAG",  # 115
    "ROUND",  # 116
    "HARD_SWISH",  # 117
    "IF",  # 118
    "WHILE",  # 119
    "NON_MAX_SUPPRESSION_V4",  # 120
    "NON_MAX_SUPPRESSION_V5",  # 121
    "SCATTER_ND",  # 122
    "SELECT_V2",  # 123
    "DENSIFY",  # 124
    "SEGMENT_SUM",  # 125
    "BATCH_MATMUL",  # 126
    "PLACEHOLDER_FOR_GREATER_OP_CODES",  # 127
    "CUMSUM",  # 128
    "CALL_ONCE",  # 129
    "BROADCAST_TO",  # 130
    "RFFT2D",  # 131
    "CONV_3D",  # 132
    "IMAG",  # 133
    "REAL",  # 134
    "COMPLEX_ABS",  # 135
    "HASHTABLE",  # 136
    "HASHTABLE_FIND",  # 137
    "HASHTABLE_IMPORT",  # 138
    "HASHTABLE_SIZE",  # 139
    "REDUCE_ALL",  # 140
    "CONV_3D_TRANSPOSE",  # 141
    "VAR_HANDLE",  # 142
    "READ_VARIABLE",  # 143
    "ASSIGN_VARIABLE",  # 144
    "BROADCAST_ARGS",  # 145
    "RANDOM_STANDARD_NORMAL",  # 146
    "BUCKETIZE",  # 147
    "RANDOM_UNIFORM",  # 148
    "MULTINOMIAL",  # 149
    "GELU",  # 150
    "DYNAMIC_UPDATE_SLICE",  # 151
    "RELU_0_TO_1",  # 152
    "UNSORTED_SEGMENT_PROD",  # 153
    "UNSORTED_SEGMENT_MAX",  # 154
    "UNSORTED_SEGMENT_SUM",  # 155
    "ATAN2",  # 156
    "UNSORTED_SEGMENT_MIN",  # 157
    "SIGN",  # 158
    "BITCAST",  # 159
    "BITWISE_XOR",  # 160
    "RIGHT_SHIFT",  # 161
    "STABLEHLO_LOGISTIC",  # 162
    "STABLEHLO_ADD",  # 163
    "STABLEHLO_DIVIDE",  # 164
    "STABLEHLO_MULTIPLY",  # 165
    "STABLEHLO_MAXIMUM",  # 166
    "STABLEHLO_RESHAPE",  # 167
    "STABLEHLO_CLAMP",  # 168
    "STABLEHLO_CONCATENATE",  # 169
    "STABLEHLO_BROADCAST_IN_DIM",  # 170
    "STABLEHLO_CONVOLUTION",  # 171
    "STABLEHLO_SLICE",  # 172
    "STABLEHLO_CUSTOM_CALL",  # 173
    "STABLEHLO_REDUCE",  # 174
    "STABLEHLO_ABS",  # 175
    "STABLEHLO_AND",  # 176
    "STABLEHLO_COSINE",  # 177
    "STABLEHLO_EXPONENTIAL",  # 178
    "STABLEHLO_FLOOR",  # 179
    "STABLEHLO_LOG",  # 180
    "STABLEHLO_MINIMUM",  # 181
    "STABLEHLO_NEGATE",  # 182
    "STABLEHLO_OR",  # 183
    "STABLEHLO_POWER",  # 184
    "STABLEHLO_REMAINDER",  # 185
    "STABLEHLO_RSQRT",  # 186
    "STABLEHLO_SELECT",  # 187
    "STABLEHLO_SUBTRACT",  # 188
    "STABLEHLO_TANH",  # 189
    "STABLEHLO_SCATTER",  # 190
    "STABLEHLO_COMPARE",  # 191
    "STABLEHLO_CONVERT",  # 192
    "STABLEHLO_DYNAMIC_SLICE",  # 193
    "STABLEHLO_DYNAMIC_UPDATE_SLICE",  # 194
    "STABLEHLO_PAD",  # 195
    "STABLEHLO_IOTA",  # 196
    "STABLEHLO_DOT_GENERAL",  # 197
    "STABLEHLO_REDUCE_WINDOW",  # 198
    "STABLEHLO_SORT",  # 199
    "STABLEHLO_WHILE",  # 200
    "STABLEHLO_GATHER",  # 201
    "STABLEHLO_TRANSPOSE",  # 202
    "DILATE",  # 203
    "STABLEHLO_RNG_BIT_GENERATOR",  # 204
    "REDUCE_WINDOW",  # 205
    "STABLEHLO_COMPOSITE",  # 206
    "STABLEHLO_SHIFT_LEFT",  # 207
    "STABLEHLO_CBRT",  # 208
    "STABLEHLO_CASE",  # 209
)

CUSTOM = BUILTIN_OPERATORS.index("CUSTOM")


# ------------------------------------------------------------------------------------------ operand table
# BuiltinOptions union members, indexed by code, without the "Options" suffix (0: NONE).
BUILTIN_OPTIONS: tuple[str, ...] = tuple("""
NONE Conv2D DepthwiseConv2D ConcatEmbeddings LSHProjection Pool2D SVDF RNN FullyConnected Softmax Concatenation Add
L2Norm LocalResponseNormalization LSTM ResizeBilinear Call Reshape SkipGram SpaceToDepth EmbeddingLookupSparse Mul
Pad Gather BatchToSpaceND SpaceToBatchND Transpose Reducer Sub Div Squeeze SequenceRNN StridedSlice Exp TopKV2 Split
LogSoftmax Cast Dequantize MaximumMinimum ArgMax Less Neg PadV2 Greater GreaterEqual LessEqual Select Slice
TransposeConv SparseToDense Tile ExpandDims Equal NotEqual Shape Pow ArgMin FakeQuant Pack LogicalOr OneHot
LogicalAnd LogicalNot Unpack FloorDiv Square ZerosLike Fill BidirectionalSequenceLSTM BidirectionalSequenceRNN
UnidirectionalSequenceLSTM FloorMod Range ResizeNearestNeighbor LeakyRelu SquaredDifference MirrorPad Abs SplitV
Unique ReverseV2 AddN GatherNd Cos Where Rank ReverseSequence MatrixDiag Quantize MatrixSetDiag HardSwish If While
DepthToSpace NonMaxSuppressionV4 NonMaxSuppressionV5 ScatterNd SelectV2 Densify SegmentSum BatchMatMul Cumsum
CallOnce BroadcastTo Rfft2d Conv3D Hashtable HashtableFind HashtableImport HashtableSize VarHandle ReadVariable
AssignVariable Random Bucketize Gelu DynamicUpdateSlice UnsortedSegmentProd UnsortedSegmentMax UnsortedSegmentMin
UnsortedSegmentSum ATan2 Sign Bitcast BitwiseXor RightShift""".split())

# The operators whose operands the reader checks fully ("OP:Options" names the builtin options the kernel
# reads; none when absent): name -> (min inputs, max inputs or None, input positions that may be -1 (an
# omitted optional operand), min outputs, max outputs or None, options code). Every input below "min" is
# required: LiteRT's kernels dereference it unconditionally, and a -1 there crashed the process
# (FULLY_CONNECTED weights in allocate_tensors(), a RESHAPE shape of -1), so such files are refused. A file
# whose every operator is listed here, with operand counts in range and its own options (a SPLIT reading
# REDUCE_PROD's options crashed), is "vouched for" and loaded in-process; any other file is first run once in
# a child process (runtimes/_probe.py). List only operators the fuzz suite exercises.
_ONE_IN = """
ABS:Abs CAST:Cast CEIL COS:Cos DEPTH_TO_SPACE:DepthToSpace DEQUANTIZE:Dequantize ELU EXP:Exp FLOOR GELU:Gelu
HARD_SWISH:HardSwish L2_NORMALIZATION:L2Norm LEAKY_RELU:LeakyRelu LOG LOGISTIC LOG_SOFTMAX:LogSoftmax
LOGICAL_NOT:LogicalNot NEG:Neg QUANTIZE:Quantize RELU RELU6 RELU_N1_TO_1 ROUND RSQRT SHAPE:Shape SIN
SOFTMAX:Softmax SQRT SQUARE:Square SQUEEZE:Squeeze TANH ZEROS_LIKE:ZerosLike AVERAGE_POOL_2D:Pool2D
MAX_POOL_2D:Pool2D L2_POOL_2D:Pool2D SPACE_TO_DEPTH:SpaceToDepth"""
_TWO_IN = """
ADD:Add SUB:Sub MUL:Mul DIV:Div FLOOR_DIV:FloorDiv FLOOR_MOD:FloorMod POW:Pow MAXIMUM:MaximumMinimum
MINIMUM:MaximumMinimum SQUARED_DIFFERENCE:SquaredDifference EQUAL:Equal NOT_EQUAL:NotEqual LESS:Less
LESS_EQUAL:LessEqual GREATER:Greater GREATER_EQUAL:GreaterEqual LOGICAL_AND:LogicalAnd LOGICAL_OR:LogicalOr
BATCH_MATMUL:BatchMatMul PRELU MEAN:Reducer SUM:Reducer REDUCE_PROD:Reducer REDUCE_MAX:Reducer
REDUCE_MIN:Reducer REDUCE_ANY:Reducer PAD:Pad MIRROR_PAD:MirrorPad TRANSPOSE:Transpose GATHER:Gather
GATHER_ND:GatherNd EXPAND_DIMS:ExpandDims TILE:Tile BROADCAST_TO:BroadcastTo ARG_MAX:ArgMax ARG_MIN:ArgMin
RESIZE_BILINEAR:ResizeBilinear RESIZE_NEAREST_NEIGHBOR:ResizeNearestNeighbor FILL:Fill EMBEDDING_LOOKUP"""
_THREE_IN = """
SELECT:Select SELECT_V2:SelectV2 SLICE:Slice PADV2:PadV2 RANGE:Range SPACE_TO_BATCH_ND:SpaceToBatchND
BATCH_TO_SPACE_ND:BatchToSpaceND"""
_OTHER = {  # "OP:Options" -> (min inputs, max inputs, optional positions, min outputs, max outputs)
    "CONV_2D:Conv2D": (2, 3, (2,), 1, 1), "DEPTHWISE_CONV_2D:DepthwiseConv2D": (2, 3, (2,), 1, 1),
    "CONV_3D:Conv3D": (2, 3, (2,), 1, 1), "FULLY_CONNECTED:FullyConnected": (2, 3, (2,), 1, 1),
    "TRANSPOSE_CONV:TransposeConv": (3, 4, (3,), 1, 1), "RESHAPE:Reshape": (1, 2, (), 1, 1),
    "STRIDED_SLICE:StridedSlice": (4, 4, (), 1, 1), "CONCATENATION:Concatenation": (1, None, (), 1, 1),
    "PACK:Pack": (1, None, (), 1, 1), "TOPK_V2:TopKV2": (2, 2, (), 2, 2),
}  # not SPLIT, SPLIT_V, UNPACK: their output counts live in options (a SPLIT with num_splits 2 and one output crashed)


def _entry(token: str, spec: tuple) -> tuple[str, tuple]:
    op, _, options = token.partition(":")
    return op, (*spec, BUILTIN_OPTIONS.index(options) if options else 0)


OPERANDS: dict[str, tuple[int, int | None, tuple[int, ...], int, int | None, int]] = dict(
    [_entry(t, (n, n, (), 1, 1)) for n, group in ((1, _ONE_IN), (2, _TWO_IN), (3, _THREE_IN)) for t in group.split()]
    + [_entry(t, spec) for t, spec in _OTHER.items()])

# Operators whose omitted optional input (a bias) is still vouched for (float and int8 ran without it): LiteRT
# 2.3.0 crashed on a DEPTHWISE_CONV_2D without bias and refuses a CONV_2D without one; those get a child run.
OMIT_VOUCHED = frozenset({"FULLY_CONNECTED", "TRANSPOSE_CONV"})

# Option fields (field id: default) a vouched operator must have >= 1: a MAX_POOL_2D / AVERAGE_POOL_2D with
# filter_height -2**31 crashed LiteRT 2.3.0; strides and dilations are held to the same rule.
_POOL = {1: 0, 2: 0, 3: 0, 4: 0}  # Pool2DOptions stride_w, stride_h, filter_width, filter_height
POSITIVE_OPTIONS: dict[str, dict[int, int]] = {
    "AVERAGE_POOL_2D": _POOL, "MAX_POOL_2D": _POOL, "L2_POOL_2D": _POOL,
    "CONV_2D": {1: 0, 2: 0, 4: 1, 5: 1},  # stride_w, stride_h, dilation_w_factor, dilation_h_factor
    "DEPTHWISE_CONV_2D": {1: 0, 2: 0, 5: 1, 6: 1},
    "TRANSPOSE_CONV": {1: 0, 2: 0},
}


def operand_check(op: str, inputs, outputs, options: int) -> tuple[str | None, bool]:
    """(problem, vouched) for one operator (its tensor indices already range-checked by the reader).

    ``problem`` says why the file must be refused, or is None; ``vouched`` is False when the reader does not
    know this operator or these operand counts, so the runtime must be tried in a child process first.
    A -1 output is refused for every operator: LiteRT writes through it."""
    if -1 in outputs:
        return f"output {list(outputs).index(-1)} is -1: an operator's outputs cannot be omitted", False
    spec = OPERANDS.get(op)
    if spec is None:
        return None, False
    lo, hi, optional, out_lo, out_hi, own = spec
    if len(inputs) < lo or -1 in inputs[:lo]:
        return f"lacks one of its {lo} required inputs: {list(inputs)}", False
    for i, t in enumerate(inputs[:hi]):  # past "max", the kernel refuses the count itself
        if t == -1 and i not in optional:
            return f"input {i} is -1 (omitted), but {op} cannot run without it", False
    counts_ok = ((hi is None or len(inputs) <= hi) and out_lo <= len(outputs)
                 and (out_hi is None or len(outputs) <= out_hi))
    omits = any(i >= len(inputs) or inputs[i] == -1 for i in optional)
    return None, counts_ok and options in (0, own) and not (omits and op not in OMIT_VOUCHED)
