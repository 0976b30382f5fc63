using System.Net.NetworkInformation;
using System.Text;
using NUnit.Framework;

namespace PipeTransport.Bridge.Tests;

/// <summary>socat's own address keywords (any case), each against a real peer: socat, a file, stdio.</summary>
public sealed class SocatSpellingTests
{
    /// <summary>A listen spelling, its other side socat's bare PIPE (an anonymous echo pipe); a socat client gets its line back.</summary>
    [TestCase("TCP-LISTEN:0,bind=127.0.0.1", "TCP:127.0.0.1:{0}", "PIPE")]
    [TestCase("tcp4-listen:127.0.0.1:0", "TCP4:127.0.0.1:{0}", "pipe")]
    [TestCase("Tcp4-Listen:0,bind=127.0.0.1", "TCP:127.0.0.1:{0}", "Pipe")]
    [TestCase("TCP6-LISTEN:0,bind=[::1]", "TCP6:[::1]:{0}", "PIPE")]
    [TestCase("tcp-listen:0,bind=127.0.0.1", "TCP:127.0.0.1:{0}", "PIPE:{1}/loop")]
    [CancelAfter(30_000)]
    public async Task ListenSpellingsServeAnEcho(string listen, string client, string echo, CancellationToken cancellationToken)
    {
        if (listen.Contains("::1", StringComparison.Ordinal))
            Assume.That(Socket6Available(), Is.True, "no IPv6 loopback here");
        using var dir = new TempDir();
        await using var bridge = BridgeProcess.Start("-d", "-d", listen, echo.Replace("{1}", dir.Path, StringComparison.Ordinal));
        int port = await bridge.WaitTcpPortAsync(cancellationToken);

        await using var socat = BridgeProcess.StartSocat(client.Replace("{0}", port.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal), "STDIO");
        await socat.Process.StandardInput.WriteAsync("echo me\n");
        socat.Process.StandardInput.Close();
        Assert.That(await socat.Process.StandardOutput.ReadToEndAsync(cancellationToken), Is.EqualTo("echo me\n"));
        Assert.That(await socat.WaitExitAsync(cancellationToken), Is.Zero, socat.Stderr);
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
        Assert.That(Directory.GetFileSystemEntries(dir.Path), Is.Empty, "the named pipe it created is removed");
    }

    /// <summary>A connect spelling, from stdio to a socat echo server (TCP or Unix).</summary>
    [TestCase("TCP4:127.0.0.1:{0}", "TCP-LISTEN:0,bind=127.0.0.1,reuseaddr")]
    [TestCase("tcp-connect:127.0.0.1:{0}", "TCP-LISTEN:0,bind=127.0.0.1,reuseaddr")]
    [TestCase("TCP:localhost:{0}", "TCP4-LISTEN:0,bind=127.0.0.1,reuseaddr")]
    [TestCase("UNIX-CONNECT:{0}", "UNIX-LISTEN:{0}")]
    [TestCase("unix-client:{0}", "UNIX-LISTEN:{0}")]
    [TestCase("Unix:{0}", "UNIX-LISTEN:{0}")]
    [TestCase("GOPEN:{0}", "UNIX-LISTEN:{0}")]
    [CancelAfter(30_000)]
    public async Task ConnectSpellingsReachSocat(string connect, string server, CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string socketPath = dir["echo.sock"];
        await using var echo = BridgeProcess.StartSocat(server.Replace("{0}", socketPath, StringComparison.Ordinal), "EXEC:cat");
        string listening = await echo.WaitListeningAsync(cancellationToken);
        string target = server.StartsWith("UNIX", StringComparison.Ordinal) ? socketPath : listening[(listening.LastIndexOf(':') + 1)..];
        await using var bridge = BridgeProcess.Start(["STDIO", connect.Replace("{0}", target, StringComparison.Ordinal)], redirectStdio: true);

        await bridge.Process.StandardInput.WriteAsync("round trip\n");
        bridge.Process.StandardInput.Close();
        Assert.That(await bridge.Process.StandardOutput.ReadToEndAsync(cancellationToken), Is.EqualTo("round trip\n"));
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
        Assert.That(await echo.WaitExitAsync(cancellationToken), Is.Zero, echo.Stderr);
    }

    /// <summary>The pipebridge listener, a socat client (Unix).</summary>
    [Test, CancelAfter(30_000)]
    public async Task UnixListenSpellingServesSocat(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string socketPath = dir["s.sock"];
        await using var bridge = BridgeProcess.Start("-d", "-d", $"UNIX-LISTEN:{socketPath}", "PIPE");
        await bridge.WaitListeningAsync(cancellationToken);
        await using var socat = BridgeProcess.StartSocat($"UNIX-CONNECT:{socketPath}", "STDIO");
        await socat.Process.StandardInput.WriteAsync("over unix\n");
        socat.Process.StandardInput.Close();
        Assert.That(await socat.Process.StandardOutput.ReadToEndAsync(cancellationToken), Is.EqualTo("over unix\n"));
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
    }

    /// <summary>
    /// OPEN writes in place (no O_CREAT, no O_TRUNC), CREATE truncates, GOPEN and a bare path append
    /// and create; socat's OPEN reads the result back.
    /// </summary>
    [Test, CancelAfter(30_000)]
    public async Task FileSpellingsOpenCreateAndAppend(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string path = dir["f.txt"];
        await PipeAsync($"CREATE:{path}", "0123456789\n", cancellationToken);
        await PipeAsync($"OPEN:{path}", "abc", cancellationToken);
        Assert.That(await File.ReadAllTextAsync(path, cancellationToken), Is.EqualTo("abc3456789\n"));
        await PipeAsync($"GOPEN:{path}", "more\n", cancellationToken);
        await PipeAsync(path, "end\n", cancellationToken);
        await PipeAsync($"create:{path}", "fresh\n", cancellationToken);
        await PipeAsync($"{dir.Path}/new.txt", "made\n", cancellationToken);
        Assert.That(await File.ReadAllTextAsync(dir["new.txt"], cancellationToken), Is.EqualTo("made\n"));

        await using var socat = BridgeProcess.StartSocat("-u", $"OPEN:{path}", "STDOUT");
        socat.Process.StandardInput.Close();
        Assert.That(await socat.Process.StandardOutput.ReadToEndAsync(cancellationToken), Is.EqualTo("fresh\n"));

        // Read back through pipebridge's own OPEN, and a missing file is not created by OPEN.
        await using var reader = BridgeProcess.Start(["-u", $"open:{path}", "STDOUT"], redirectStdio: true);
        Assert.That(await reader.Process.StandardOutput.ReadToEndAsync(cancellationToken), Is.EqualTo("fresh\n"));
        Assert.That(await reader.WaitExitAsync(cancellationToken), Is.Zero, reader.Stderr);
        await using var missing = BridgeProcess.Start(["-u", "stdin", $"OPEN:{dir["missing.txt"]}"], redirectStdio: true);
        missing.Process.StandardInput.Close();
        Assert.That(await missing.WaitExitAsync(cancellationToken), Is.EqualTo(1));
        Assert.That(missing.Stderr, Does.EndWith("open: ENOENT (No such file or directory)"));
        Assert.That(File.Exists(dir["missing.txt"]), Is.False);
    }

    /// <summary>
    /// A bare path (gopen) naming an existing FIFO opens it as a FIFO, waiting for socat on the other
    /// end; used both ways it is an echo.
    /// </summary>
    [Test, CancelAfter(30_000)]
    public async Task ABarePathToAFifo(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string fifo = dir.Fifo("f");
        await using var bridge = BridgeProcess.Start(["-u", fifo, "STDOUT"], redirectStdio: true);
        await using var writer = BridgeProcess.StartSocat("-u", "STDIN", $"OPEN:{fifo}");
        await writer.Process.StandardInput.WriteAsync("through the fifo\n");
        writer.Process.StandardInput.Close();
        Assert.That(await bridge.Process.StandardOutput.ReadToEndAsync(cancellationToken), Is.EqualTo("through the fifo\n"));
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
        Assert.That(await writer.WaitExitAsync(cancellationToken), Is.Zero, writer.Stderr);

        Assert.That(await RunAsync(["-", $"gopen:{fifo}"], "echo\n", cancellationToken), Is.EqualTo("echo\n"));
    }

    private static async Task<string> RunAsync(string[] args, string input, CancellationToken cancellationToken)
    {
        await using var bridge = BridgeProcess.Start(args, redirectStdio: true);
        await bridge.Process.StandardInput.WriteAsync(input);
        bridge.Process.StandardInput.Close();
        string output = await bridge.Process.StandardOutput.ReadToEndAsync(cancellationToken);
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
        return output;
    }

    /// <summary>STDIN, STDOUT and STDIO in either order, and bare fd numbers: stdin is copied to stdout once.</summary>
    [TestCase("STDIN", "STDOUT"), TestCase("STDOUT", "STDIN"), TestCase("STDIO", "-"), TestCase("-u 0", "1")]
    [CancelAfter(20_000)]
    public async Task StandardStreamSpellings(string first, string second, CancellationToken cancellationToken)
    {
        await using var bridge = BridgeProcess.Start(first.Split(' ').Append(second), redirectStdio: true);
        await bridge.Process.StandardInput.BaseStream.WriteAsync(Encoding.ASCII.GetBytes("std\n"), cancellationToken);
        bridge.Process.StandardInput.Close();
        Assert.That(await bridge.Process.StandardOutput.ReadToEndAsync(cancellationToken), Is.EqualTo("std\n"));
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
    }

    private static async Task PipeAsync(string address, string text, CancellationToken cancellationToken)
    {
        await using var bridge = BridgeProcess.Start(["-u", "STDIN", address], redirectStdio: true);
        await bridge.Process.StandardInput.BaseStream.WriteAsync(Encoding.ASCII.GetBytes(text), cancellationToken);
        bridge.Process.StandardInput.Close();
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
    }

    private static bool Socket6Available() =>
        NetworkInterface.GetAllNetworkInterfaces().Any(i => i.Supports(NetworkInterfaceComponent.IPv6)
            && i.GetIPProperties().UnicastAddresses.Any(a => a.Address.Equals(System.Net.IPAddress.IPv6Loopback)));
}
