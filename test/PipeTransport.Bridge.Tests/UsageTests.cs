using NUnit.Framework;

namespace PipeTransport.Bridge.Tests;

/// <summary>Command-line mistakes: exit code 2 and one clear stderr line, within a second.</summary>
public sealed class UsageTests
{
    private static readonly string LongSocketPath = "/tmp/" + new string('s', 120);

    private static IEnumerable<TestCaseData> BadCommandLines()
    {
        yield return Case("unknown address type 'foo'", "foo:1", "stdio");
        yield return Case("unknown address type 'tcp-lsten'", "tcp-lsten:80", "stdio");
        yield return Case("bad port 'host'", "tcp:host", "stdio");
        yield return Case("bad port '99999'", "tcp:127.0.0.1:99999", "stdio");
        yield return Case("cannot connect to port 0", "tcp:127.0.0.1:0", "stdio");
        yield return Case("the host is empty", "tcp::80", "stdio");
        yield return Case("write IPv6 hosts in brackets", "tcp:::1:80", "stdio");
        yield return Case("expected [IPv6]:PORT", "tcp:[::1:80", "stdio");
        yield return Case("bad port 'http'", "tcp-listen:http", "stdio");
        yield return Case("expected fifo:PATH", "-u", "fifo:", "stdio");
        yield return Case("expected file:PATH", "file:", "stdio");
        yield return Case("expected fd:N", "fd:x", "stdio");
        yield return Case("expected fd:N", "fd:-1", "stdio");
        yield return Case("at most 107 bytes", "unix:" + LongSocketPath, "stdio");
        yield return Case("at most 107 bytes", "unix-listen:" + LongSocketPath, "stdio");
        yield return Case("needs an address on each side", "fifo:/tmp/a!!", "stdio");
        yield return Case("only one '!!'", "stdio!!stdio!!stdio", "stdio");
        yield return Case("listen addresses cannot be combined", "tcp-listen:0!!stdio", "stdio");
        yield return Case("stdio takes no parameter", "stdio:x", "stdio");
        yield return Case("stdin takes no parameter", "STDIN:x", "stdout");
        yield return Case("nothing to copy between 'stdin' and 'stdin'", "stdin", "stdin");
        yield return Case("both use fd 0", "fd:0", "-");
        yield return Case("both use fd 5", "fd:5", "fd:5");
        yield return Case("'::1' is not an IPv4 address", "tcp4-listen:0,bind=::1", "stdio");
        yield return Case("'127.0.0.1' is not an IPv6 address", "stdio", "tcp6:127.0.0.1:80");
        yield return Case("expected tcp4:HOST:PORT", "stdio", "TCP4");
        yield return Case("carries one direction only", "fifo:/tmp/a", "stdio");
        yield return Case("unknown option '--bogus'", "--bogus", "stdio", "stdio");
        yield return Case("bad block size '0'", "-b", "0", "stdio", "stdio");
        yield return Case("bad block size '1q'", "-b", "1q", "stdio", "stdio");
        yield return Case("bad block size '1g'", "-b", "1g", "stdio", "stdio");
        yield return Case("bad engine 'fast'", "--engine", "fast", "stdio", "stdio");
        yield return Case("-u and -U are opposite directions", "-u", "-U", "stdio", "tcp:127.0.0.1:1");
        yield return Case("-x shows the data, which --engine splice never sees", "-x", "--engine", "splice", "stdio", "tcp:127.0.0.1:1");
        yield return Case("-v shows the data, which --engine splice never sees", "-v", "--engine", "splice", "stdio", "tcp:127.0.0.1:1");
        yield return Case("Required argument missing", "stdio");
        yield return Case("Required argument missing");
        yield return Case("Unrecognized command or argument 'extra'", "stdio", "stdio", "extra");
        yield return Case("--fork needs a listen address", "--fork", "stdio", "stdio");
        yield return Case("ADDRESS2 cannot be a listen address", "tcp-listen:0", "unix-listen:/tmp/never.sock");
        yield return Case("--handoff needs a listen address (tcp-listen:, unix-listen:) as ADDRESS1", "--handoff", "/tmp/never-handoff.sock", "tcp:127.0.0.1:1", "stdio");
        yield return Case("--handoff needs a listen address", "--handoff", "/tmp/never-handoff.sock", "--fork", "accept-fd:3", "stdio");
    }

    private static TestCaseData Case(string expected, params string[] args) =>
        new TestCaseData(args, expected).SetArgDisplayNames(string.Join(' ', args));

    [TestCaseSource(nameof(BadCommandLines)), CancelAfter(10_000)]
    public async Task BadCommandLineExitsWithTwo(string[] args, string expected, CancellationToken cancellationToken)
    {
        await using var bridge = BridgeProcess.Start(args);
        int exitCode = await bridge.WaitExitAsync(cancellationToken);
        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.EqualTo(2), bridge.Stderr);
            Assert.That(bridge.Stderr, Does.StartWith("pipebridge: ").And.Contain(expected));
            Assert.That(bridge.Stderr.Split('\n'), Has.Length.EqualTo(1), "one line on stderr");
        });
    }

    [Test, CancelAfter(10_000)]
    public async Task HelpShowsAddressGrammarWithExamples(CancellationToken cancellationToken)
    {
        await using var bridge = BridgeProcess.Start(["--help"], redirectStdio: true);
        string output = await bridge.Process.StandardOutput.ReadToEndAsync(cancellationToken);
        Assert.Multiple(async () =>
        {
            Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero);
            foreach (string form in new[] { "fifo:PATH", "stdio", "stdin", "stdout", "fd:N", "file:PATH", "open:PATH", "gopen:PATH", "create:PATH",
                         "pipe:PATH", "unix-connect:PATH", "unix:", "unix-client:", "unix-listen:PATH", "tcp:HOST:PORT", "tcp4:", "tcp6:",
                         "tcp-listen:[HOST:]PORT", "tcp4-listen:", "accept-fd:[N]", "exec:PROGRAM", "system:COMMAND", "A!!B",
                         "fork", "reuseaddr", "bind=HOST", "backlog=N", "mode=OCTAL", "user=NAME|UID", "group=NAME|GID", "unlink-early",
                         "creat, excl, append, trunc", "--engine", "--fork", "--stats", "-u", "-U", "-b", "-v", "-x", "-d", "-T", "-t", "-V", "Examples:" })
                Assert.That(output, Does.Contain(form));
        });
    }
}
