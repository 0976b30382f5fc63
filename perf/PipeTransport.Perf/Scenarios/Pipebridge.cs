using System.Globalization;
using System.Reflection;
using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Scenarios;

/// <summary>
/// Runs the built <c>pipebridge.dll</c> (src/PipeTransport.Bridge, built with this harness through a
/// ProjectReference of the same configuration; <c>PIPEBRIDGE_DLL</c> overrides the path) as its own
/// process under the same <c>dotnet</c> host, so it is measured as a user would run it.
/// </summary>
internal static class Pipebridge
{
    private static readonly Lazy<string> Dll = new(Locate);

    /// <summary>The built pipebridge.dll (run with <c>dotnet</c>).</summary>
    public static string DllPath => Dll.Value;

    /// <summary>
    /// Runs <c>pipebridge -u [-b SIZE] --engine ENGINE FROM TO</c> to completion and returns its CPU time
    /// (user + system, start-up included); throws on a non-zero exit.
    /// </summary>
    public static async Task<TimeSpan> RunAsync(RunContext context, string engine, string from, string to, int blockSize = 0, string? dll = null)
    {
        var arguments = new List<string> { dll ?? Dll.Value, "-u" };
        blockSize = blockSize > 0 ? blockSize : context.Settings.BridgeBlockSize;
        if (blockSize > 0)
        {
            arguments.AddRange(["-b", blockSize.ToString(CultureInfo.InvariantCulture)]);
        }

        arguments.AddRange(["--engine", engine, from, to]);
        return await RunMeasuredAsync(context, DotnetHost(), [.. arguments]);
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
