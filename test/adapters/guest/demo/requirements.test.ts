import { describe, expect, it } from 'vitest';
import { demoGuestRequirements } from '../../../../adapters/guest/demo/requirements.js';

describe('demoGuestRequirements', () => {
  it('names each host command with why it is needed and its fix', () => {
    const requirements = demoGuestRequirements();
    expect(requirements.map((requirement) => requirement.command)).toEqual(['apt-cache', 'apt-get', 'dpkg-deb', 'xz']);
    for (const requirement of requirements) {
      expect(requirement.why.length).toBeGreaterThan(10);
      expect(requirement.fix.length).toBeGreaterThan(10);
    }
  });
});
