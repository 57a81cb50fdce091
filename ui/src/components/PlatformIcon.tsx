/** A small glyph for the device's platform, as the app reported it. */
export function PlatformIcon({ platform }: { platform: string | null }) {
  const p = (platform ?? '').toLowerCase();
  const kind = p.includes('mac') || p.includes('ios') || p.includes('darwin')
    ? 'apple'
    : p.includes('win')
      ? 'windows'
      : p.includes('android')
        ? 'phone'
        : p.includes('linux')
          ? 'linux'
          : 'device';
  const paths: Record<string, string> = {
    apple: 'M16 3c-1.2.1-2.6.9-3.4 1.9-.8.9-1.4 2.2-1.2 3.5 1.3.1 2.7-.7 3.5-1.7.8-1 1.3-2.3 1.1-3.7zM19.5 17.2c-.6 1.3-.9 1.9-1.7 3-1.1 1.6-2.6 3.5-4.5 3.5-1.7 0-2.1-1.1-4.4-1.1s-2.8 1.1-4.5 1.1C2.5 23.7 1.1 22 0 20.4c-3-4.6-.3-10.6 3.6-10.7 1.7 0 3.2 1.2 4.3 1.2 1 0 2.9-1.4 4.9-1.2.8 0 3.2.3 4.7 2.5-4.1 2.3-3.4 8.2 2 5z',
    windows: 'M1 4l9-1.3v8.8H1zm10-1.4L23 1v10.4H11zM1 12.5h9v8.8L1 20zm10 0h12V23l-12-1.7z',
    phone: 'M7 1h10a2 2 0 012 2v18a2 2 0 01-2 2H7a2 2 0 01-2-2V3a2 2 0 012-2zm0 3v14h10V4zm5 15.5a1 1 0 100 2 1 1 0 000-2z',
    linux: 'M12 1c-2.8 0-4 2.4-4 5 0 1.7-.6 3-1.7 4.6C4.9 12.6 4 14.6 4 17c0 1 .3 2 1 2.7-.5.6-.6 1.5.2 2.1 1 .8 2.6.2 3.8.2h6c1.2 0 2.8.6 3.8-.2.8-.6.7-1.5.2-2.1.7-.7 1-1.7 1-2.7 0-2.4-.9-4.4-2.3-6.4C16.6 9 16 7.7 16 6c0-2.6-1.2-5-4-5zm-1.5 4a1 1 0 110 2 1 1 0 010-2zm3 0a1 1 0 110 2 1 1 0 010-2z',
    device: 'M2 4h20v12H2zm2 2v8h16V6zM8 18h8v2H8z',
  };
  return (
    <svg className="platform" viewBox="0 0 24 24" role="img" aria-label={platform ?? 'unknown platform'}>
      <path d={paths[kind]} fill="currentColor" />
    </svg>
  );
}
