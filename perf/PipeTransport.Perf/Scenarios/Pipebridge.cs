using System.Globalization;
using System.Reflection;
using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Scenarios;

/// <summary>
/// Runs pipebridge as its own process, as a user would: the Native AOT binary it ships as
/// (<see cref="NativePipebridge"/>), or the built <c>pipebridge.dll</c> (src/PipeTransport.Bridge, built with
/// this harness through a ProjectReference of the same configuration; <c>PIPEBRIDGE_DLL</c> overrides the
/// path) under the same <c>dotnet</c> host.
/// </summary>
internal static class Pipebridge
{
    private static readonly Lazy<string> Dll = new(Locate);

    /// <summary>The built pipebridge.dll (run with <c>dotnet</c>).</summary>
    public static string DllPath => Dll.Value;

    /// <summary>
    /// Runs the Native AOT <c>pipebridge -u [-b SIZE] --engine ENGINE FROM TO</c>, the binary as it ships
    /// (<see cref="NativePipebridge"/>), to completion and returns its CPU time (user + system, start-up
    /// included); throws on a non-zero exit.
    /// </summary>
    public static Task<TimeSpan> RunAsync(RunContext context, string engine, string from, string to, int blockSize = 0) =>
        RunMeasuredAsync(context, NativePipebridge.Path, [.. Arguments(context, engine, from, to, blockSize)]);

    /// <summary>
    /// <see cref="RunAsync"/> for <c>dotnet pipebridge.dll</c> (the NuGet tool's JIT form), or for the
    /// <paramref name="dll"/> of another build.
    /// </summary>
    public static Task<TimeSpan> RunDllAsync(RunContext context, string engine, string from, string to, int blockSize = 0, string? dll = null) =>
        RunMeasuredAsync(context, DotnetHost(), [dll ?? Dll.Value, .. Arguments(context, engine, from, to, blockSize)]);

    private static List<string> Arguments(RunContext context, string engine, string from, string to, int blockSize)
    {
        var arguments = new List<string> { "-u" };
        blockSize = blockSize > 0 ? blockSize : context.Settings.BridgeBlockSize;
        if (blockSize > 0)
        {
            arguments.AddRange(["-b", blockSize.ToString(CultureInfo.InvariantCulture)]);
        }

        arguments.AddRange(["--engine", engine, from, to]);
        return arguments;
    }

    /// <summary>Runs <paramref name="fileName"/> to completion and returns its CPU time; throws on a non-zero exit.</summary>
    public static async Task<TimeSpan> RunMeasuredAsync(RunContext context, string fileName, params string[] arguments)
    {
        await using var child = ChildProcess.StartMeasured(fileName, arguments);
        await child.WaitForSuccessAsync(context.CancellationToken);
        return child.ChildCpuTime();
    }

    /// <summary>
    /// <c>PIPEBRIDGE_COMPARE_DLL</c>: another build of pipebridge.dll (e.g. before a change), run as extra variants
    /// alternating with this one, so an A/B comparison sees the same machine noise.
    /// </summary>
    public static string? CompareDll => Environment.GetEnvironmentVariable("PIPEBRIDGE_COMPARE_DLL") is { Length: > 0 } path ? path : null;

    /// <summary>The scenario's variants, plus the <paramref name="comparison"/> variants when <see cref="CompareDll"/> is set.</summary>
    public static IReadOnlyList<Variant> WithComparison(IReadOnlyList<Variant> variants, IReadOnlyList<Variant> comparison) =>
        CompareDll is null ? variants : [.. variants, .. comparison];

    private static string DotnetHost()
    {
        string? host = Environment.ProcessPath;
        return host is not null && Path.GetFileNameWithoutExtension(host) == "dotnet" ? host : "dotnet";
    }

    private static string Locate()
    {
        string? path = Environment.GetEnvironmentVariable("PIPEBRIDGE_DLL");
        if (string.IsNullOrEmpty(path))
        {
            path = typeof(Pipebridge).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
                .FirstOrDefault(a => a.Key == "PipebridgeDll")?.Value;
        }

        if (path is null || !File.Exists(path))
        {
            throw new FileNotFoundException(
                $"pipebridge.dll not found at '{path}': build it (dotnet build -c Release perf/PipeTransport.Perf builds it too) or set PIPEBRIDGE_DLL");
        }

        return path;
    }
}
