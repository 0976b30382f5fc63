using System.Diagnostics;
using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Scenarios;

/// <summary>
/// The reference bridge (<c>Native/cbridge.c</c>): blocking <c>read</c>/<c>write</c> or <c>splice</c>
/// loops in C with no event loop, the least work any bridge can do. Its rows bound what pipebridge can
/// reach on this machine; the harness compiles it with <c>cc -O2</c> (next to the harness) on first use.
/// </summary>
internal static class CBridge
{
    private static readonly Lazy<string> Binary = new(Compile);
    private static readonly Lazy<string?> CompileError = new(() =>
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

    /// <summary>For <see cref="Variant.Unavailable"/>: why the C reference cannot run here (no compiler), or null.</summary>
    public static string? Unavailable() => CompileError.Value;

    /// <summary>Runs <c>cbridge MODE FROM TO</c> to completion and returns its CPU time.</summary>
    public static Task<TimeSpan> RunAsync(RunContext context, string mode, string from, string to) =>
        Pipebridge.RunMeasuredAsync(context, Binary.Value, mode, from, to);

    private static string Compile()
    {
        string source = Path.Combine(AppContext.BaseDirectory, "Native", "cbridge.c");
        string binary = Path.Combine(AppContext.BaseDirectory, "cbridge");
        if (File.Exists(binary) && File.GetLastWriteTimeUtc(binary) >= File.GetLastWriteTimeUtc(source))
        {
            return binary;
        }

        var start = new ProcessStartInfo("cc", ["-O2", "-o", binary, source]) { RedirectStandardError = true };
        Process compiler;
        try
        {
            compiler = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"the C reference bridge needs a C compiler (cc: {e.Message}); apt-get install gcc", e);
        }

        using (compiler)
        {
            string errors = compiler.StandardError.ReadToEnd();
            compiler.WaitForExit();
            if (compiler.ExitCode != 0)
            {
                throw new InvalidOperationException($"cc -O2 {source} failed: {errors}");
            }
        }

        return binary;
    }
}
