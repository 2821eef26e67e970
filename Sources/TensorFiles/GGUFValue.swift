/// The type tag of a GGUF metadata value (`gguf_type` in the GGUF specification).
public enum GGUFValueType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6
    case bool = 7, string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// The fewest bytes one value of this type can occupy in a file (a string's length prefix,
    /// an array's element type and count): the bound that rejects absurd counts before allocating.
    public var minimumEncodedSize: Int {
        switch self {
        case .uint8, .int8, .bool: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64, .string: 8
        case .array: 12
        }
    }

    public var description: String {
        switch self {
        case .uint8: "uint8"
        case .int8: "int8"
        case .uint16: "uint16"
        case .int16: "int16"
        case .uint32: "uint32"
        case .int32: "int32"
        case .float32: "float32"
        case .bool: "bool"
        case .string: "string"
        case .array: "array"
        case .uint64: "uint64"
        case .int64: "int64"
        case .float64: "float64"
        }
    }
}

/// A GGUF metadata value with its exact on-disk type, as read by ``GGUFFile`` and written by ``GGUFWriter``.
///
/// ``metadataValue`` gives the type-erased ``MetadataValue`` that the other file formats share.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool), string(String)
    /// An array: its element type and elements (all of that type; nested arrays allowed).
    indirect case array(GGUFValueType, [GGUFValue])

    /// The value's type tag.
    public var type: GGUFValueType {
        switch self {
        case .uint8: .uint8
        case .int8: .int8
        case .uint16: .uint16
        case .int16: .int16
        case .uint32: .uint32
        case .int32: .int32
        case .uint64: .uint64
        case .int64: .int64
        case .float32: .float32
        case .float64: .float64
        case .bool: .bool
        case .string: .string
        case .array: .array
        }
    }

    /// The value without its exact width: unsigned → `.uint`, signed → `.int`, floats → `.float` (exact).
    public var metadataValue: MetadataValue {
        switch self {
        case .uint8(let v): .uint(UInt64(v))
        case .uint16(let v): .uint(UInt64(v))
        case .uint32(let v): .uint(UInt64(v))
        case .uint64(let v): .uint(v)
        case .int8(let v): .int(Int64(v))
        case .int16(let v): .int(Int64(v))
        case .int32(let v): .int(Int64(v))
        case .int64(let v): .int(v)
        case .float32(let v): .float(Double(v))
        case .float64(let v): .float(v)
        case .bool(let v): .bool(v)
        case .string(let v): .string(v)
        case .array(_, let a): .array(a.map(\.metadataValue))
        }
    }
}

/// One metadata key/value pair of a GGUF file, in file order.
public struct GGUFMetadataEntry: Sendable, Equatable {
    /// The key, e.g. `llama.attention.head_count`.
    public var key: String
    /// The value with its exact on-disk type.
    public var value: GGUFValue

    public init(key: String, value: GGUFValue) {
        self.key = key
        self.value = value
    }
}
