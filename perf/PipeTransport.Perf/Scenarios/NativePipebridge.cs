using System.Diagnostics;
using System.Reflection;

namespace PipeTransport.Perf.Scenarios;

/// <summary>
/// The Native AOT build of pipebridge, as it ships: <c>PIPEBRIDGE_NATIVE</c> names a binary, otherwise the
/// harness publishes src/PipeTransport.Bridge with <c>-p:PublishAot=true</c> next to itself on first use
/// (and again when the sources are newer). Needs clang and zlib1g-dev.
/// </summary>
internal static class NativePipebridge
{
    private static readonly Lazy<string> Binary = new(Publish);
    private static readonly Lazy<string?> PublishError = new(() =>
    {
        try
        {
            _ = Binary.Value;
            return null;
        }
        catch (InvalidOperationException e)
        {
            return e.Message;
        }
    });

    /// <summary>The binary's path (published on first use).</summary>
    public static string Path => Binary.Value;

    /// <summary>For <see cref="Harness.Variant.Unavailable"/>: why the native binary cannot be had here, or null.</summary>
    public static string? Unavailable() => PublishError.Value;

    private static string Publish()
    {
        if (Environment.GetEnvironmentVariable("PIPEBRIDGE_NATIVE") is { Length: > 0 } given)
        {
            return File.Exists(given) ? given : throw new InvalidOperationException($"PIPEBRIDGE_NATIVE: no file at '{given}'");
        }

        string project = typeof(NativePipebridge).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .First(a => a.Key == "BridgeProject").Value!;
        string output = System.IO.Path.Combine(AppContext.BaseDirectory, "native");
        string binary = System.IO.Path.Combine(output, "pipebridge");
        if (File.Exists(binary) && File.GetLastWriteTimeUtc(binary) >= NewestSource(project))
        {
            return binary;
        }

        var start = new ProcessStartInfo("dotnet", ["publish", project, "-c", "Release", "-r", "linux-x64", "-p:PublishAot=true", "-o", output])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using Process publish = Process.Start(start)!;
        Task<string> stdout = publish.StandardOutput.ReadToEndAsync();
        string errors = publish.StandardError.ReadToEnd();
        publish.WaitForExit();
        if (publish.ExitCode != 0 || !File.Exists(binary))
        {
            throw new InvalidOperationException($"dotnet publish -p:PublishAot=true failed (clang and zlib1g-dev are needed): {stdout.Result}{errors}");
        }

        return binary;
    }

    private static DateTime NewestSource(string project)
    {
        string src = System.IO.Path.GetDirectoryName(System.IO.Path.GetDirectoryName(project))!;
        return Directory.EnumerateFiles(src, "*.cs*", SearchOption.AllDirectories)
            .Where(f => !f.Contains("/obj/") && !f.Contains("/bin/"))
            .Max(File.GetLastWriteTimeUtc);
    }
}
