namespace PipeTransport.Bridge;

/// <summary>Linux's open(2) and fcntl(2) values (the same on every architecture .NET runs on) that the core's Libc does not name.</summary>
internal static class LinuxFlags
{
    public const int O_CREAT = 0x40;
    public const int O_EXCL = 0x80;
    public const int O_TRUNC = 0x200;
    public const int O_APPEND = 0x400;

    public const int F_SETFD = 2;
    public const int FD_CLOEXEC = 1;

    /// <summary>Permissions asked of open(2) for a file it creates (the umask then applies), as touch(1) and socat do.</summary>
    public const UnixFileMode DefaultFileMode =
        UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite;
}
