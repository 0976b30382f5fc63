using System.Text;

namespace PipeTransport.Kestrel;

/// <summary>
/// Zero-downtime restarts (<see cref="PipeTransportOptions.HandOff"/>): a new instance of the app started
/// with the same <see cref="Path"/> takes over the running instance's listening sockets instead of binding
/// them, so no client is refused while the old instance drains its requests and exits. Each instance
/// serves a hand-off socket at <see cref="Path"/> (mode 0600, only the same user may take over) once it
/// has started. Set with <c>UsePipeTransport(o =&gt; o.HandOff = new HandOffOptions("/run/myapp/handoff.sock"))</c>.
/// </summary>
public sealed class HandOffOptions
{
    /// <summary>The longest Unix socket path the kernel takes (<c>sun_path</c> is 108 bytes with its NUL).</summary>
    private const int MaxPathBytes = 107;

    /// <summary>"/.ho" with the pid and a random number in hex, as HandOffServer names its socket before the rename.</summary>
    private const int TemporaryNameBytes = 22;

    /// <summary>Sets the hand-off socket's path.</summary>
    /// <param name="path">
    /// The hand-off socket, in a directory that only the app's user can write (e.g. <c>/run/myapp/handoff.sock</c>).
    /// A relative path is taken from the current directory.
    /// </param>
    /// <exception cref="ArgumentException">The path is empty, contains a NUL, or is too long for a Unix socket.</exception>
    public HandOffOptions(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (path.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException($"The hand-off socket path '{path.Replace("\0", "\\0", StringComparison.Ordinal)}' contains a NUL.", nameof(path));
        }
        string full = System.IO.Path.GetFullPath(path);
        // The server binds a temporary name in the same directory first (HandOffServer.Start): it must fit too.
        int bytes = Math.Max(Encoding.UTF8.GetByteCount(full), Encoding.UTF8.GetByteCount(System.IO.Path.GetDirectoryName(full) ?? "/") + TemporaryNameBytes);
        if (bytes > MaxPathBytes)
        {
            throw new ArgumentException(
                $"The hand-off socket path '{full}' is too long for a Unix socket: it and a {TemporaryNameBytes}-byte temporary name in its directory must fit in {MaxPathBytes} bytes.", nameof(path));
        }
        Path = full;
    }

    /// <summary>The hand-off socket's full path.</summary>
    public string Path { get; }

    /// <summary>
    /// How long the running instance waits for a successor that connected to finish the hand-off; a
    /// successor that stalls longer is dropped and the running instance keeps serving. Default 10 s.
    /// </summary>
    public TimeSpan Timeout
    {
        get;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(value, TimeSpan.Zero);
            field = value;
        }
    } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Checks what the constructor cannot: the socket's directory must exist when the server starts.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The directory of <see cref="Path"/> does not exist.</exception>
    internal void Validate()
    {
        string? directory = System.IO.Path.GetDirectoryName(Path);
        if (directory is not null && !Directory.Exists(directory))
        {
            throw new DirectoryNotFoundException($"The directory of the hand-off socket '{Path}' does not exist.");
        }
    }

    /// <inheritdoc />
    public override string ToString() => Path;
}
