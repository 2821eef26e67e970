import TensorFiles

/// libFuzzer entry: any bytes must give an NpyFile or a TensorFileError, never a trap.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNpy(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let file = MappedFile(copying: UnsafeRawBufferPointer(start: data, count: size), path: "fuzz.npy")
    guard let npy = try? NpyFile(file: file) else { return 0 }
    if npy.tensors.first.map({ $0.byteCount <= 1 << 20 }) == true { _ = try? npy.floats() }
    return 0
}
