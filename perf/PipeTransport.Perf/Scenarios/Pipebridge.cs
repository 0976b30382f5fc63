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

    /// <summary>Runs <c>pipebridge -u [--b SIZE] --engine ENGINE FROM TO</c> to completion; throws on a non-zero exit.</summary>
    public static async Task RunAsync(RunContext context, string engine, string from, string to)
    {
        var arguments = new List<string> { Dll.Value, "-u" };
        if (context.Settings.BridgeBlockSize > 0)
        {
            arguments.AddRange(["-b", context.Settings.BridgeBlockSize.ToString(CultureInfo.InvariantCulture)]);
        }

        arguments.AddRange(["--engine", engine, from, to]);
        await using var bridge = ChildProcess.Start(DotnetHost(), [.. arguments]);
        await bridge.WaitForSuccessAsync(context.CancellationToken);
    }

    /// <summary>Runs <c>socat ARGS...</c> to completion; throws on a non-zero exit.</summary>
    public static async Task RunSocatAsync(RunContext context, params string[] arguments)
    {
        await using var socat = ChildProcess.Start("socat", arguments);
        await socat.WaitForSuccessAsync(context.CancellationToken);
    }

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
