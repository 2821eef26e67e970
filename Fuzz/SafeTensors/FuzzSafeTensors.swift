import TensorFiles

/// libFuzzer entry: any bytes must give a SafeTensorsFile or a TensorFileError, never a trap.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let file = MappedFile(copying: UnsafeRawBufferPointer(start: data, count: size), path: "fuzz.safetensors")
    guard let st = try? SafeTensorsFile(file: file) else { return 0 }
    for t in st.tensors where t.byteCount <= 1 << 20 {
        _ = try? st.floats(t)
    }
    return 0
}
