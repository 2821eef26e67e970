import Foundation

/// The repository's sample files (Samples/…) used as defaults, found from the current directory or,
/// failing that, from the repository the running binary was built in (…/.build/<triple>/release/kvscope),
/// so `kvscope tune MODEL --kv-budget 20%` works from any directory. (`kvscope` with no arguments
/// still opens only the sample under the current directory, as documented.)
enum SampleFiles {
    /// `relative` itself when it exists under the current directory; else the same path under the
    /// nearest ancestor of the executable's directory that has it; else `relative` unchanged (the
    /// caller's error then names it).
    static func resolve(_ relative: String) -> String {
        let fm = FileManager.default
        if fm.fileExists(atPath: relative) { return relative }
        var dir = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            let candidate = dir.appendingPathComponent(relative).path
            if fm.fileExists(atPath: candidate) { return candidate }
            let parent = dir.deletingLastPathComponent()
            if parent.path == dir.path { break }
            dir = parent
        }
        return relative
    }
}
