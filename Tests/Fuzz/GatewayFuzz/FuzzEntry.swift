import Foundation
import Gateway

/// libFuzzer's driver (in the runtime `-sanitize=fuzzer` links): SwiftPM gives every
/// executable its own entry point, so this one hands the command line to libFuzzer itself.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// The input callback of every target; `FUZZ_TARGET` names the one to run
/// (FuzzTargets.names). Built only by `scripts/fuzz` (GATEWAY_FUZZ=1 in Package.swift).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = start.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? []
    let target = ProcessInfo.processInfo.environment["FUZZ_TARGET"] ?? ""
    guard FuzzTargets.run(target, bytes) else {
        FileHandle.standardError.write(Data("FUZZ_TARGET must be one of \(FuzzTargets.names.joined(separator: ", "))\n".utf8))
        exit(2)
    }
    return 0
}

@main
enum GatewayFuzz {
    static func main() {
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(runFuzzerDriver(&argc, &argv, fuzzOneInput))
    }
}
