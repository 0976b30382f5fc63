using System.Diagnostics;
using System.Reflection;
using System.Text.RegularExpressions;
using System.Threading.Channels;

namespace PipeTransport.Bridge.Tests;

/// <summary>pipebridge running as a real child process (<c>dotnet pipebridge.dll ARGS</c>), stderr captured line by line.</summary>
internal sealed partial class BridgeProcess : IAsyncDisposable
{
    public static readonly string DllPath = typeof(BridgeProcess).Assembly
        .GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == "PipeBridgeDll").Value!;

    private readonly Process _process;
    private readonly Channel<string> _stderrLines = Channel.CreateUnbounded<string>();
    private readonly List<string> _stderr = [];
    private readonly TaskCompletionSource _stderrClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Stopwatch Elapsed { get; } = Stopwatch.StartNew();

    private BridgeProcess(Process process) => _process = process;

    public Process Process => _process;

    public static BridgeProcess Start(params string[] args) => Start(args, redirectStdio: false);

    public static BridgeProcess Start(IEnumerable<string> args, bool redirectStdio) =>
        StartProgram("dotnet", [DllPath, .. args], redirectStdio);

    /// <summary>
    /// socat with -d -d (so it reports "listening on ..."), stdin and stdout redirected. -t 30: socat
    /// ends a session 0.5 s after the first EOF by default, and on a busy machine an answer (or a
    /// pipebridge that systemd starts on the first connection) can take longer than that.
    /// </summary>
    public static BridgeProcess StartSocat(params string[] args) => StartProgram("socat", ["-d", "-d", "-t", "30", .. args], redirectStdio: true);

    public static BridgeProcess StartProgram(string program, IEnumerable<string> args, bool redirectStdio)
    {
        var info = new ProcessStartInfo(program)
        {
            RedirectStandardError = true,
            RedirectStandardInput = redirectStdio,
            RedirectStandardOutput = redirectStdio,
            UseShellExecute = false,
        };
        foreach (string arg in args) info.ArgumentList.Add(arg);
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var bridge = new BridgeProcess(process);
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                bridge._stderrLines.Writer.TryComplete();
                bridge._stderrClosed.TrySetResult();
                return;
            }
            lock (bridge._stderr) bridge._stderr.Add(e.Data);
            bridge._stderrLines.Writer.TryWrite(e.Data);
        };
        process.Start();
        process.BeginErrorReadLine();
        return bridge;
    }

    /// <summary>Everything written to stderr so far.</summary>
    public string Stderr
    {
        get { lock (_stderr) return string.Join('\n', _stderr); }
    }

    /// <summary>Waits for the "listening on ADDRESS" line that -d -d prints once the socket accepts connections.</summary>
    public Task<string> WaitListeningAsync(CancellationToken cancellationToken) => WaitLineAsync(ListeningLine(), cancellationToken);

    /// <summary>Waits for a stderr line matching <paramref name="pattern"/>; returns its first group.</summary>
    public async Task<string> WaitLineAsync(Regex pattern, CancellationToken cancellationToken)
    {
        await foreach (string line in _stderrLines.Reader.ReadAllAsync(cancellationToken))
        {
            Match m = pattern.Match(line);
            if (m.Success) return m.Groups[1].Value;
        }
        throw new InvalidOperationException($"exited before printing /{pattern}/: {Stderr}");
    }

    /// <summary>Sends a signal (SIGTERM, SIGINT) the way a shell or service manager would.</summary>
    public void Signal(Mono.Unix.Native.Signum signal) => Mono.Unix.Native.Syscall.kill(_process.Id, signal);

    /// <summary>Waits for the "listening" line of a tcp-listen address and returns its port.</summary>
    public async Task<int> WaitTcpPortAsync(CancellationToken cancellationToken)
    {
        string address = await WaitListeningAsync(cancellationToken);
        return int.Parse(address[(address.LastIndexOf(':') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    public async Task<int> WaitExitAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _process.WaitForExitAsync(cancellationToken);
            await _stderrClosed.Task.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // A hang: say where the child's threads are, for the test log.
            string report = $"still running after {Elapsed.Elapsed.TotalSeconds:F1} s ({(_process.HasExited ? "exited, stderr open" : "not exited")}); " +
                $"threads: {DescribeThreads()}; stderr: {Stderr}";
            NUnit.Framework.TestContext.Out.WriteLine(report);
            throw new TimeoutException(report);
        }
        Elapsed.Stop();
        return _process.ExitCode;
    }

    /// <summary>Each thread of the child as "name: wchan" (what it waits in, from /proc).</summary>
    private string DescribeThreads()
    {
        try
        {
            return string.Join(", ", Directory.GetDirectories($"/proc/{_process.Id}/task").Select(task =>
                $"{File.ReadAllText(Path.Combine(task, "comm")).Trim()}: {File.ReadAllText(Path.Combine(task, "wchan")).Trim()}"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            return $"unavailable ({e.Message})";
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            try { _process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }

    [GeneratedRegex(@"listening on (.+)$")]
    private static partial Regex ListeningLine();
}
